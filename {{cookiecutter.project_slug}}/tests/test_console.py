"""The pipeline's console: one line per stage by default, everything with verbose, everything in the log."""

import io
import re
import threading

import pytest

from {{ cookiecutter.package_name }}.pipeline import Console, log_path


class Terminal(io.StringIO):
    """A screen that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def two_stages(console: Console) -> None:
    """A quiet stage and a chatty one."""
    with console.stage("[1/2] first"):
        console.say("did the first thing")
    with console.stage("[2/2] second"):
        console.detail("a long report\nof many lines")
        console.say("an early word")
        console.say("the result")


def test_by_default_each_stage_shows_one_line_with_its_time_and_last_message(tmp_path):
    screen = io.StringIO()
    with Console(screen=screen, log=tmp_path / "run.log") as console:
        two_stages(console)
    first, second, where = screen.getvalue().splitlines()
    assert re.fullmatch(r"\[1/2\] first +\d+\.\d s  did the first thing", first)
    assert re.fullmatch(r"\[2/2\] second +\d+\.\d s  the result", second)
    assert where == f"log: {tmp_path / 'run.log'}"


def test_the_log_holds_every_line_the_stages_wrote(tmp_path):
    with Console(screen=io.StringIO(), log=tmp_path / "run.log") as console:
        two_stages(console)
    logged = (tmp_path / "run.log").read_text().splitlines()
    assert logged[:2] == ["[1/2] first", "did the first thing"]
    assert logged[4:8] == ["a long report", "of many lines", "an early word", "the result"]
    assert logged[-1].startswith("[2/2] second") and logged[-1].endswith("the result")


def test_verbose_shows_what_the_log_holds(tmp_path):
    screen = io.StringIO()
    with Console(screen=screen, verbose=True, log=tmp_path / "run.log") as console:
        two_stages(console)
    assert screen.getvalue().splitlines()[:-1] == (tmp_path / "run.log").read_text().splitlines()


def test_a_failing_stage_still_gets_its_line_and_the_error_goes_on():
    screen = io.StringIO()
    console = Console(screen=screen)
    with pytest.raises(RuntimeError), console.stage("[1/1] broken"):
        raise RuntimeError("boom")
    assert screen.getvalue().endswith(" s  failed\n")


def test_a_terminal_sees_progress_while_a_stage_runs_then_only_the_summary():
    screen = Terminal()
    console = Console(screen=screen, tick=0.01)
    with console.stage("[1/1] long"):
        console.detail("...... [ 40%]")
        for _ in range(500):  # until the progress line shows the stage's latest output
            if "[ 40%]" in screen.getvalue():
                break
            threading.Event().wait(0.01)
        console.say("done well")
    output = screen.getvalue()
    assert output.startswith("[1/1] long") and "...... [ 40%]" in output and "\r\x1b[K" in output
    assert output.rsplit("\r\x1b[K", 1)[1].endswith(" s  done well\n")


def test_nothing_draws_progress_when_the_screen_is_not_a_terminal():
    screen = io.StringIO()
    console = Console(screen=screen, tick=0.001)
    with console.stage("[1/1] long"):
        console.detail("working")
        threading.Event().wait(0.05)
    assert "\r" not in screen.getvalue() and len(screen.getvalue().splitlines()) == 1


def test_each_run_logs_to_a_new_file_named_after_the_command_and_its_start():
    path = log_path("pipeline")
    assert path.parent.name == "logs"
    assert re.fullmatch(r"pipeline-\d{8}-\d{6}\.log", path.name)
