"""Install the scikit-learn version that saved a registered model: a model loads only with its own minor version.

    python .github/scripts/install_scikit_learn.py [production | previous | VERSION | FOLDER]

`production` (the default) is the model the production pointer of the project's registry names (nothing to do before the
first deploy); `previous` is the version a rollback restores; VERSION a registered version; FOLDER a model
folder. When the SCIKIT_LEARN environment variable is set, that version is installed instead: a deliberate
upgrade (the gate then needs --library-upgrade, since production cannot be loaded by the new version).
Without this, a new scikit-learn release on PyPI would leave every gate undecided and every rollback refused.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.cli import resolve
from {{ cookiecutter.package_name }}.config import Settings, load_settings
from {{ cookiecutter.package_name }}.registry import Registry, RegistryError


def model_folder(which: str, settings: Settings) -> Path | None:
    """The folder of the model named by ``which``; None when production is asked for and there is none yet."""
    registry = Registry(settings.registry)
    if which == "production":
        current = registry.current("production")
        return registry.folder(current) if current else None
    return resolve(settings, registry.previous_production() if which == "previous" else which)


def main(which: str) -> int:
    """Install the wanted scikit-learn with pip; print what was installed, or one line saying why not."""
    wanted = os.environ.get("SCIKIT_LEARN", "").strip()
    if not wanted:
        try:
            folder = model_folder(which, load_settings())
            if folder is None:
                print("no production model yet: keeping the scikit-learn it installed")
                return 0
            wanted = json.loads((folder / "metadata.json").read_text())["sklearn_version"]
        except (RegistryError, OSError, ValueError, KeyError) as error:
            print(f"error: cannot tell which scikit-learn saved the model: {error!s}", file=sys.stderr)
            return 1
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"scikit-learn=={wanted}"])
    if pip.returncode:
        print(f"error: pip could not install scikit-learn=={wanted} (exit {pip.returncode})", file=sys.stderr)
        return 1
    print(f"scikit-learn=={wanted}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "production"))
