"""Run the command line in the test's process: its exit code, standard output and standard error."""

import pytest

from {{ cookiecutter.package_name }}.cli import main


def run(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def exits(capsys, *args):
    """Run the CLI where argparse exits; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err
