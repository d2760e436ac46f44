"""The hello world's size, counted on a default bake: the budgets it is meant to meet, and what it has reached.

The budgets (issue 24) are at most 16 Python files and 2,000 lines in src/, 150 test functions and 12 subcommands.
The default bake meets three of them; its lines do not yet: REACHED is a ratchet at the size it has, which a change
may shrink, never grow (each step down lowers REACHED with it).
"""

from __future__ import annotations

import re
from pathlib import Path

BUDGET = {"modules": 16, "lines": 2_000, "test functions": 150, "subcommands": 12}
# 25 modules, 3,585 lines, 284 test functions and 15 subcommands before modules merged and tests became tables;
# then trust by construction and the report escaping (issue 20) added the tree checks and literal(), and
# schemathesis (issue 23) the contract test; then the batch path (issue 22) and the exact check of an "int" that
# the contract test called for (issue 23) added 15 lines to service.py; then every module was rewritten shorter,
# the live monitor's many-week report moved to the layer, and helpers used once were merged (3,166 to 2,907)
REACHED = {"modules": 16, "lines": 2_907, "test functions": 144, "subcommands": 12}


def size(project: Path) -> dict[str, int]:
    """The counts of a bake: its package's Python files and lines, its test functions and its subcommands."""
    package = next(project.glob("src/*/cli.py")).parent
    modules = list(package.rglob("*.py"))
    tests = [path for path in (project / "tests").rglob("test_*.py")]
    cli = (package / "cli.py").read_text()
    return {
        "modules": len(modules),
        "lines": sum(len(path.read_text().splitlines()) for path in modules),
        "test functions": sum(len(re.findall(r"^def test_", path.read_text(), re.M)) for path in tests),
        "subcommands": len(re.findall(r"\badd\((?:commands\.)?cmd_\w+", cli)),
    }


def test_the_hello_world_meets_its_budgets_and_never_grows_past_what_it_has_reached(default_project):
    counts = size(default_project)
    print(f"\nhello world: {counts}; budget: {BUDGET}")
    assert {key: value for key, value in counts.items() if value > REACHED[key]} == {}
    assert {key: value for key, value in counts.items() if value > BUDGET[key] and key != "lines"} == {}


def test_the_production_loop_lives_outside_the_hello_world(default_project, production_project):
    hello, full = size(default_project), size(production_project)
    assert (
        not list(default_project.glob("src/*/production")) and not (default_project / "tests" / "production").exists()
    )
    assert full["modules"] - hello["modules"] >= 10 and full["subcommands"] == hello["subcommands"]  # its own table
