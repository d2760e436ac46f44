"""docs/how-to/github.md names only workflows, jobs, permissions, environments and variables a bake really has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from workflow_support.act import pinned_actions

HOWTO = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "github.md"
TEXT = HOWTO.read_text()


def workflows(project: Path) -> dict[str, dict]:
    """Every generated workflow, parsed, by file name."""
    folder = project / ".github" / "workflows"
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yml"))}


def table(heading_row: str) -> list[dict[str, str]]:
    """The rows of the page's table whose header starts with ``heading_row``, as {column: cell}."""
    lines = TEXT[TEXT.index(heading_row) :].splitlines()
    header = [cell.strip() for cell in lines[0].strip().strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        if not line.strip().startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip().strip("|").split("|")), strict=True)))
    return rows


def names(cell: str) -> set[str]:
    """The `code` names of a table cell ("-" is none)."""
    return set(re.findall(r"`([^`]+)`", cell))


def permissions(job: dict) -> set[str]:
    """A job's permissions as "scope: level" strings."""
    return {f"{scope}: {level}" for scope, level in (job.get("permissions") or {}).items()}


def test_every_workflow_the_page_names_exists(production_project):
    named = set(re.findall(r"`([\w-]+\.yml)`", TEXT))
    assert named and named <= set(workflows(production_project))


def test_the_cd_tour_gives_each_job_its_real_needs_environment_and_permissions(production_project):
    jobs = workflows(production_project)["cd.yml"]["jobs"]
    rows = {next(iter(names(row["job"]))): row for row in table("| job | needs | environment |")}
    assert set(rows) == set(jobs)
    for job_id, job in jobs.items():
        needs = job.get("needs") or []
        assert names(rows[job_id]["needs"]) == set([needs] if isinstance(needs, str) else needs), job_id
        assert names(rows[job_id]["environment"]) == ({job["environment"]} if "environment" in job else set()), job_id
        assert names(rows[job_id]["permissions"]) == permissions(job), job_id


def test_the_diagram_draws_exactly_the_needs_of_cd_yml(production_project):
    jobs = workflows(production_project)["cd.yml"]["jobs"]
    diagram = re.search(r"```mermaid\n(.*?)```", TEXT, re.S)[1]
    edges = re.findall(r"^\s*(\w+)\S*.*?-->(?:\|[^|]*\|)?\s*(\w+)", diagram, re.M)
    drawn = {(a.replace("_", "-"), b.replace("_", "-")) for a, b in edges}
    needed = {(need, job_id) for job_id, job in jobs.items() for need in ([job["needs"]] if "needs" in job else [])}
    assert {edge for edge in drawn if set(edge) <= set(jobs)} == needed
    assert {b for _, b in drawn} >= set(jobs)  # every job is drawn


def test_every_permission_the_page_names_is_granted_and_every_write_is_explained(production_project):
    granted = {
        p
        for workflow in workflows(production_project).values()
        for job in workflow["jobs"].values()
        for p in permissions(job)
    }
    named = set(re.findall(r"`([a-z-]+: (?:read|write))`", TEXT.replace("\n      ", " ")))
    assert named <= granted
    assert {p for p in granted if p.endswith("write")} <= named


def test_the_production_environment_guards_exactly_the_jobs_the_page_says(production_project):
    guarded = {
        f"{name}:{job_id}"
        for name, workflow in workflows(production_project).items()
        for job_id, job in workflow["jobs"].items()
        if job.get("environment") == "production"
    }
    assert guarded == {"cd.yml:production", "rollback.yml:rollback", "monitor.yml:confirm"}
    text = " ".join(TEXT.split())
    assert "`cd.yml`'s `production` job and `rollback.yml`'s `rollback` job run in it" in text
    assert "with the production loop, `monitor.yml`'s `confirm` job too" in text


def test_the_required_status_check_is_the_ci_job_that_needs_every_other(production_project):
    (check,) = re.findall(r"status check \*\*(.+?)\*\*", TEXT)
    jobs = workflows(production_project)["ci.yml"]["jobs"]
    (job,) = [job for job in jobs.values() if job["name"] == check]
    assert set(job["needs"]) == set(jobs) - {job_id for job_id, j in jobs.items() if j is job}
    assert job["if"] == "always()"  # it reports failure, rather than being skipped, when a needed job fails


def test_the_allowed_actions_are_the_actions_the_workflows_use(production_project):
    used = {repository for repository, _ in pinned_actions(production_project / ".github" / "workflows")}
    assert set(re.findall(r"`(actions/[\w-]+)`", TEXT)) == used


@pytest.mark.parametrize("kind", ["variable", "secret"])
def test_the_variables_and_secrets_table_is_what_the_workflows_read(production_project, kind):
    prefix = {"variable": "vars", "secret": "secrets"}[kind]
    readers: dict[str, set[str]] = {}
    for path in sorted((production_project / ".github" / "workflows").glob("*.yml")):
        text, name = path.read_text(), path.name
        for used in re.findall(rf"\b{prefix}\.(\w+)", text):
            readers.setdefault(used, set()).add(name)
    readers.pop("GITHUB_TOKEN", None)  # GitHub's own, never set by hand
    rows = [row for row in table("| name | kind | used by |") if row["kind"] == kind]
    assert {next(iter(names(row["name"]))): names(row["used by"]) for row in rows} == readers
