"""The generated GitHub workflows: linted offline, their helper scripts exercised, and the workflows run with act.

Static checks and script tests are fast and run by default. The act runs (`-m act`) execute ci.yml, cd.yml,
retrain.yml, rollback.yml and monitor.yml of one bake in sequence, against a local bare repository standing in for
GitHub; see tests/workflow_support/act.py for every stand-in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import pytest
import yaml
from conftest import DEFAULTS
from shown_output import matches
from workflow_support.act import OWNER, TOKEN, ActHarness, ActRun, pinned_actions, tool
from workflow_support.github_standin import GitHubStandIn

WORKFLOWS = ("ci.yml", "cd.yml", "retrain.yml", "rollback.yml", "monitor.yml")
# what docs/how-to/github.md shows from the act runs below
CAPTURED = Path(__file__).resolve().parents[1] / "docs" / "captured"
# the tutorial's subtle bug: merchant risk turned into a percentage at training time only
BUG_BEFORE = "    return build_model(seed).fit(data.X, data.y)\n"
BUG_AFTER = (
    "    X = data.X.copy()\n"
    "    X[:, 2] *= 100  # merchant risk as a percentage\n"
    "    return build_model(seed).fit(X, data.y)\n"
)

# a week of live rows in which production scored at random and the version it replaced (its shadow) scored well
FEEDBACK_STORE = """
import random
from datetime import datetime, timezone
from pathlib import Path
from {package}.production.feedback import label_record, prediction_record, write_jsonl
from {package}.production.simulate import label_time, request_rows
from {package}.synthetic import synthetic_transactions
data = synthetic_transactions(6_000, 5, 99)
rng, now, labels = random.Random(0), datetime.now(timezone.utc), data.y.tolist()
log = [
    prediction_record(f"r{{i}}", 0, now, "{new}", row, rng.random(), "{old}", 0.5 * y + 0.5 * rng.random())
    for i, (row, y) in enumerate(zip(request_rows(data.X), labels))
]
write_jsonl(Path("predictions/log.jsonl"), log)
write_jsonl(Path("feedback/labels.jsonl"), [label_record(f"r{{i}}", 0, y, label_time(5)) for i, y in enumerate(labels)])
"""


def workflow(project: Path, name: str) -> dict:
    """A workflow file parsed as YAML (the `on:` key comes back as True under YAML 1.1)."""
    return yaml.safe_load((project / ".github" / "workflows" / name).read_text())


def jobs(project: Path):
    """Every (workflow name, job id, job) of the generated workflows."""
    for name in WORKFLOWS:
        for job_id, job in workflow(project, name)["jobs"].items():
            yield name, job_id, job


def checked(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a linter; its output is the assertion message."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------------------------
# static checks of the default bake
# ---------------------------------------------------------------------------------------------------------------


def test_workflows_match_the_github_workflow_schema(production_project):
    files = [str(production_project / ".github" / "workflows" / name) for name in WORKFLOWS]
    result = checked(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files], production_project
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_config_matches_its_schema(production_project):
    config = str(production_project / ".github" / "dependabot.yml")
    result = checked([tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", config], production_project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_even_with_the_pedantic_persona(production_project):
    result = checked([tool("zizmor"), "--offline", "--persona", "pedantic", ".github"], production_project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_nothing(production_project):
    result = checked([tool("actionlint"), "-no-color"], production_project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_nothing_in_the_dockerfile(production_project):
    result = checked([tool("hadolint"), "Dockerfile"], production_project)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_full_sha_with_its_version_beside_it(production_project):
    lines = [
        line.strip()
        for name in WORKFLOWS
        for line in (production_project / ".github" / "workflows" / name).read_text().splitlines()
        if re.match(r"\s*(-\s*)?uses:", line) and "uses: ./" not in line
    ]
    assert lines, "no action found"
    unpinned = [line for line in lines if not re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line)]
    assert unpinned == []


def test_every_workflow_grants_nothing_and_every_job_grants_its_own_permissions(production_project):
    for name in WORKFLOWS:
        assert workflow(production_project, name)["permissions"] == {}, name
    assert [f"{name}:{job_id}" for name, job_id, job in jobs(production_project) if "permissions" not in job] == []


def test_only_the_jobs_that_push_the_registry_branch_may_write_contents(production_project):
    writers = {
        f"{name}:{job_id}"
        for name, job_id, job in jobs(production_project)
        if (job.get("permissions") or {}).get("contents") == "write"
    }
    assert writers == {"cd.yml:production", "rollback.yml:rollback", "retrain.yml:retrain", "monitor.yml:confirm"}


def test_only_the_gate_job_may_write_pull_requests(production_project):
    writers = {
        f"{name}:{job_id}"
        for name, job_id, job in jobs(production_project)
        if (job.get("permissions") or {}).get("pull-requests") == "write"
    }
    assert writers == {"ci.yml:gate"}


def test_every_checkout_leaves_no_credentials_behind(production_project):
    checkouts = [
        (name, job_id, step.get("with", {}))
        for name, job_id, job in jobs(production_project)
        for step in job.get("steps", [])
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts, "no checkout found"
    assert [c for c in checkouts if c[2].get("persist-credentials") is not False] == []


def test_every_step_has_a_name(production_project):
    unnamed = [
        f"{name}:{job_id}:{step}"
        for name, job_id, job in jobs(production_project)
        for step in job.get("steps", [])
        if "name" not in step
    ]
    assert unnamed == []


def test_ci_tests_every_supported_python_given_as_strings(production_project):
    versions = workflow(production_project, "ci.yml")["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]


def test_registry_writers_share_one_queued_concurrency_group_that_never_cancels(production_project):
    # GitHub keeps one pending run per group unless `queue: max`: a newer run would cancel a waiting rollback
    queued = {"cancel-in-progress": False, "queue": "max"}
    writers = {
        f"{name}:{job_id}": job.get("concurrency")
        for name, job_id, job in jobs(production_project)
        if job.get("environment") == "production"
    }
    assert writers == {
        "cd.yml:production": {"group": "model-registry", **queued},
        "rollback.yml:rollback": {"group": "model-registry", **queued},
        "monitor.yml:confirm": {"group": "model-registry", **queued},
    }
    # deploys queue behind each other; a rollback waits only for the registry, not for a deploy's approval
    assert workflow(production_project, "cd.yml")["concurrency"] == {"group": "deploy-${{ github.ref }}", **queued}
    assert "concurrency" not in workflow(production_project, "rollback.yml")


def test_the_daily_guard_writes_the_registry_only_through_the_production_environment(production_project):
    monitor = workflow(production_project, "monitor.yml")
    assert monitor[True]["schedule"] == [{"cron": "41 6 * * *"}]  # `on:` reads as True in YAML 1.1
    guard, confirm = monitor["jobs"]["guard"], monitor["jobs"]["confirm"]
    assert guard["permissions"] == {"contents": "read", "actions": "write"}  # starts rollback.yml, itself gated
    assert "environment" not in guard and "concurrency" not in guard
    assert not any("registry-branch.sh push" in step.get("run", "") for step in guard["steps"])
    assert (confirm["environment"], confirm["needs"]) == ("production", "guard")
    assert confirm["if"] == "needs.guard.outputs.decision == 'confirm'"
    runs = [step.get("run", "") for step in confirm["steps"]]
    guard_again = next(i for i, run in enumerate(runs) if '"$CLI" guard' in run)
    pushes = [i for i, run in enumerate(runs) if "registry-branch.sh push" in run]
    assert len(pushes) == 1 and guard_again < pushes[0]  # judged again once approved, under the registry lock
    assert confirm["steps"][pushes[0]]["if"] == "steps.guard.outputs.decision == 'confirm'"
    assert {job: spec["permissions"].get("actions") for job, spec in monitor["jobs"].items()} == {
        "guard": "write",  # starts rollback.yml
        "confirm": None,
        "monitor": "write",  # starts retrain.yml
        "report": None,
    }


def test_only_main_reaches_production_and_reruns_can_upload_their_artifacts_again(production_project):
    production = workflow(production_project, "cd.yml")["jobs"]["production"]
    assert production["if"] == "github.ref == 'refs/heads/main'"
    uploads = [
        (f"{name}:{job_id}", step["with"])
        for name, job_id, job in jobs(production_project)
        for step in job.get("steps", [])
        if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    assert len(uploads) == 5
    assert [where for where, options in uploads if options.get("overwrite") is not True] == []
    release = next(options for where, options in uploads if options["name"] == "release")
    assert release["retention-days"] >= 30  # as long as a release may wait for approval


def test_every_action_the_workflows_use_has_a_stand_in_for_act(production_project):
    used = {repository for repository, _ in pinned_actions(production_project / ".github" / "workflows")}
    stubs = Path(__file__).parent / "workflow_support" / "stubs"
    assert {
        r for r in used if r != "actions/checkout" and not (stubs / r.split("/")[1] / "action.yml").is_file()
    } == set()


def test_jobs_that_hold_write_tokens_restore_no_cache(production_project):
    # a cache written by any branch's run could plant code in the job that publishes the image and the registry
    writers = [
        (name, job_id, job)
        for name, job_id, job in jobs(production_project)
        if "write" in (job.get("permissions") or {}).values() and "steps" in job
    ]
    assert {f"{name}:{job_id}" for name, job_id, _ in writers} >= {"cd.yml:production", "rollback.yml:rollback"}
    cached = [
        f"{name}:{job_id}:{step['name']}"
        for name, job_id, job in writers
        for step in job["steps"]
        if "cache" in step.get("with", {}) or step.get("uses", "").startswith("actions/cache")
    ]
    assert cached == []


def test_ci_audits_the_dependencies_with_pip_audit_and_requires_it(production_project):
    ci = workflow(production_project, "ci.yml")["jobs"]
    runs = [step.get("run", "") for step in ci["audit"]["steps"]]
    assert any("uv sync --locked --extra audit" in run for run in runs)
    assert any(run.startswith("pip-audit ") and "--vulnerability-service pypi" in run for run in runs)
    assert ci["audit"]["permissions"] == {"contents": "read"}
    assert "audit" in ci["all-checks-pass"]["needs"]


@pytest.mark.parametrize("python", DEFAULTS["python_version"])
def test_the_base_image_is_pinned_by_digest_and_dependabot_proposes_new_digests(cookies, python):
    result = cookies.bake(extra_context={"python_version": python})
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    froms = re.findall(r"^FROM (\S+)", (project / "Dockerfile").read_text(), flags=re.M)
    assert re.fullmatch(rf"python:{re.escape(python)}-slim@sha256:[0-9a-f]{{64}}", froms[0])
    assert froms[1:] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]  # both stages: the pinned one unless BASE_IMAGE is given
    updates = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())["updates"]
    assert {update["package-ecosystem"] for update in updates} == {"github-actions", "uv", "pip", "docker"}


# ---------------------------------------------------------------------------------------------------------------
# inputs and variables: checked by .github/scripts/check_inputs.py before any shell uses them
# ---------------------------------------------------------------------------------------------------------------

# an expression a user or another job controls: an input, a repository variable, another job's output
UNTRUSTED = re.compile(r"\$\{\{[^}]*\b(inputs\.|vars\.|needs\.[\w-]+\.outputs\.)")
CHECK = "python3 .github/scripts/check_inputs.py "
VALID = {
    "WEEK": "7",
    "VERSION": "20260101-120000-1a2b3c4d",
    "GATED_AGAINST": "",
    "FOLDER": "artifacts/20260101-120000-1a2b3c4d",
    "REASON": "manual rollback",
    "IMAGE_REGISTRY": "ghcr.io",
    "STAGING_PORT": "8080",
    "FEEDBACK_BRANCH": "production-feedback",
}
# each runs a command if a shell evaluates it (arithmetic, an unquoted expansion, a line added to $GITHUB_ENV)
INJECTIONS = [
    "1+a[$(touch {canary})0]",
    "$(touch {canary})",
    "`touch {canary}`",
    "1; touch {canary}",
    "7\nBASH_ENV={canary}",
    "../x",
    "/etc",
    "-1",
    "x y",
]
HOSTILE = {name: INJECTIONS for name in VALID} | {
    "REASON": ["two\nlines", "bell\a", "\x1b[31mred", "x" * 201],
    "WEEK": [*INJECTIONS, "1000", "seven"],
    "STAGING_PORT": [*INJECTIONS, "0", "65536", ""],
    "IMAGE_REGISTRY": [*INJECTIONS, "", "GHCR.IO"],
}


def check_steps(project: Path) -> list[tuple[str, str, dict]]:
    """Every (workflow, job, step) that runs check_inputs.py as its whole command."""
    return [
        (name, job_id, step)
        for name, job_id, job in jobs(project)
        for step in job.get("steps", [])
        if step.get("run", "").startswith(CHECK)
    ]


def test_every_input_and_variable_is_checked_before_a_shell_step_uses_it(production_project):
    for name in WORKFLOWS:
        document = workflow(production_project, name)
        for job_id, job in document["jobs"].items():
            scopes = [document.get("env") or {}, job.get("env") or {}]
            scopes += [step.get("env") or {} for step in job.get("steps", [])]
            untrusted = {var for scope in scopes for var, value in scope.items() if UNTRUSTED.search(str(value))}
            checked: set[str] = set()
            for step in job.get("steps", []):
                run = step.get("run", "")
                if run.startswith(CHECK):
                    checked |= set(run.removeprefix(CHECK).split())
                used = {var for var in untrusted if re.search(rf"\$\{{?{var}\b", run)}
                assert used <= checked, f"{name}:{job_id}: '{step['name']}' uses {sorted(used - checked)} unchecked"
    # retrain.yml has no shell step: it hands its week to cd.yml, whose staging job checks it
    assert workflow(production_project, "retrain.yml")["jobs"]["retrain"]["with"]["week"] == "${{ inputs.week }}"
    staging = workflow(production_project, "cd.yml")["jobs"]["staging"]
    assert staging["env"]["WEEK"] == "${{ inputs.week || vars.DATA_WEEK }}"


def test_each_job_that_reads_inputs_or_variables_checks_them_first(production_project):
    where = {
        f"{name}:{job}": step["run"].removeprefix(CHECK).split() for name, job, step in check_steps(production_project)
    }
    assert where == {
        "cd.yml:staging": ["WEEK", "IMAGE_REGISTRY", "STAGING_PORT"],
        "cd.yml:production": ["IMAGE_REGISTRY", "VERSION", "FOLDER", "GATED_AGAINST"],
        "ci.yml:gate": ["WEEK", "STAGING_PORT"],
        "rollback.yml:rollback": ["VERSION", "REASON", "IMAGE_REGISTRY"],
        "monitor.yml:guard": ["FEEDBACK_BRANCH"],
        "monitor.yml:confirm": ["FEEDBACK_BRANCH"],
        "monitor.yml:monitor": ["FEEDBACK_BRANCH"],
    }
    for name, job_id, job in jobs(production_project):
        steps = [step for step in job.get("steps", []) if "run" in step]
        if f"{name}:{job_id}" in where:
            assert steps[0]["run"].startswith(CHECK), f"{name}:{job_id}: the check must be the first shell step"


def run_step(project: Path, run: str, env: dict[str, str], github_env: Path) -> subprocess.CompletedProcess:
    """Run a step's shell text as GitHub does (bash -e), in the bake, with only the given environment."""
    environment = {"PATH": os.environ["PATH"], "HOME": str(github_env.parent), "GITHUB_ENV": str(github_env), **env}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", run],
        cwd=project, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("where", "variable"),
    [("cd.yml:staging", n) for n in ("WEEK", "IMAGE_REGISTRY", "STAGING_PORT")]
    + [("cd.yml:production", n) for n in ("IMAGE_REGISTRY", "VERSION", "FOLDER", "GATED_AGAINST")]
    + [("ci.yml:gate", n) for n in ("WEEK", "STAGING_PORT")]
    + [("rollback.yml:rollback", n) for n in ("VERSION", "REASON", "IMAGE_REGISTRY")]
    + [("monitor.yml:guard", "FEEDBACK_BRANCH")],
)
def test_a_hostile_input_fails_its_check_with_one_line_and_runs_nothing(production_project, tmp_path, where, variable):
    (step,) = [s for n, j, s in check_steps(production_project) if f"{n}:{j}" == where]
    names = step["run"].removeprefix(CHECK).split()
    canary, github_env = tmp_path / "pwned", tmp_path / "github_env"
    for hostile in HOSTILE[variable]:
        github_env.write_text("")
        value = hostile.format(canary=canary)
        done = run_step(production_project, step["run"], {**{n: VALID[n] for n in names}, variable: value}, github_env)
        output = (done.stdout + done.stderr).splitlines()
        assert done.returncode == 1, f"{variable}={value!r}: {done.stdout}{done.stderr}"
        assert len(output) == 1 and output[0].startswith("::error::"), f"{variable}={value!r}: {output}"
        assert "\n" not in value or value.split("\n")[1] not in output[0]  # the value is never echoed
        assert github_env.read_text() == "", f"{variable}={value!r}: something was written to GITHUB_ENV"
        assert not canary.exists(), f"{variable}={value!r} ran a command"


def test_valid_inputs_reach_later_steps_through_github_env_checked_and_normalised(production_project, tmp_path):
    (step,) = [s for n, j, s in check_steps(production_project) if f"{n}:{j}" == "rollback.yml:rollback"]
    reason = "the $(touch pwned) release `broke` scoring; see [a] and {b}"  # text, never evaluated
    env = {"VERSION": "", "REASON": reason, "IMAGE_REGISTRY": "registry.example.com:5000/team"}
    done = run_step(production_project, step["run"], env, tmp_path / "github_env")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "github_env").read_text().splitlines() == [f"{k}={v}" for k, v in env.items()]
    assert not (production_project / "pwned").exists()
    (step,) = [s for n, j, s in check_steps(production_project) if f"{n}:{j}" == "ci.yml:gate"]
    for week, expected in [("08", "8"), ("0", "0"), ("", str(datetime.now(timezone.utc).isocalendar()[1]))]:
        (tmp_path / "github_env").write_text("")
        done = run_step(
            production_project, step["run"], {"WEEK": week, "STAGING_PORT": "8080"}, tmp_path / "github_env"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "github_env").read_text().splitlines() == [f"WEEK={expected}", "STAGING_PORT=8080"]


def test_a_project_on_its_own_csv_gets_no_week_so_the_commands_read_its_configured_data(production_project, tmp_path):
    project = tmp_path / "own-data"
    shutil.copytree(production_project, project, ignore=shutil.ignore_patterns(".tox", ".venv"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('source = "synthetic"', 'source = "csv"\npath = "x.csv"'))
    (step,) = [s for n, j, s in check_steps(production_project) if f"{n}:{j}" == "ci.yml:gate"]
    for week in ("7", ""):
        (tmp_path / "github_env").write_text("")
        done = run_step(project, step["run"], {"WEEK": week, "STAGING_PORT": "8080"}, tmp_path / "github_env")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "github_env").read_text().splitlines() == ["WEEK=", "STAGING_PORT=8080"]
    runs = [step.get("run", "") for _, _, job in jobs(production_project) for step in job.get("steps", [])]
    assert not [run for run in runs if '--week "$WEEK"' in run.replace('${WEEK:+--week "$WEEK"}', "")]


# ---------------------------------------------------------------------------------------------------------------
# the helper scripts the workflows call
# ---------------------------------------------------------------------------------------------------------------


def github_api(project: Path, api: GitHubStandIn, *args: str) -> subprocess.CompletedProcess:
    """Run .github/scripts/github_api.py against the stand-in."""
    env = {
        **os.environ,
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": api.state.repository,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "42",
    }
    script = project / ".github" / "scripts" / "github_api.py"
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_gate_report_is_one_pull_request_comment_updated_in_place(production_project, tmp_path):
    with GitHubStandIn(f"{OWNER}/fraud-detector", TOKEN) as api:
        for verdict in ("PASSED", "BLOCKED"):
            (tmp_path / "report.md").write_text(f"## AUC gate: {verdict}\n")
            done = github_api(
                production_project, api, "comment", "--pr", "7", "--body-file", str(tmp_path / "report.md")
            )
            assert done.returncode == 0, done.stderr
        comments = api.state.comments[7]
    assert len(comments) == 1
    assert "AUC gate: BLOCKED" in comments[0]["body"] and "PASSED" not in comments[0]["body"]
    assert "/actions/runs/42" in comments[0]["body"]


def test_a_blocked_retrain_opens_one_issue_and_updates_it_afterwards(production_project, tmp_path):
    (tmp_path / "report.md").write_text("## AUC gate: BLOCKED\n")
    with GitHubStandIn(f"{OWNER}/fraud-detector", TOKEN) as api:
        for _ in range(2):
            done = github_api(
                production_project,
                api,
                "issue",
                "--title",
                "Retraining blocked",
                "--body-file",
                str(tmp_path / "report.md"),
            )
            assert done.returncode == 0, done.stderr
        issues = api.state.issues
        methods = [method for method, _ in api.state.requests]
    assert len(issues) == 1 and issues[0]["title"] == "Retraining blocked"
    assert methods.count("POST") == 1 and methods.count("PATCH") == 1


def test_the_monitor_issue_is_its_own_issue_updated_in_place(production_project, tmp_path):
    (tmp_path / "report.md").write_text("## Monitor: retrain advised\n")
    with GitHubStandIn(f"{OWNER}/fraud-detector", TOKEN) as api:
        gate = github_api(
            production_project, api, "issue", "--title", "Gate", "--body-file", str(tmp_path / "report.md")
        )
        assert gate.returncode == 0, gate.stderr
        for _ in range(2):
            done = github_api(
                production_project, api, "issue", "--marker", "production-monitor", "--title", "Monitor",
                "--body-file", str(tmp_path / "report.md"),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        issues = api.state.issues
    assert [issue["title"] for issue in issues] == ["Gate", "Monitor"]
    assert issues[1]["body"].startswith("<!-- production-monitor -->\n## Monitor")


def test_github_api_starts_a_workflow_with_its_inputs(production_project):
    with GitHubStandIn(f"{OWNER}/fraud-detector", TOKEN) as api:
        done = github_api(
            production_project, api, "dispatch", "--workflow", "rollback.yml", "--ref", "main",
            "--input", "version=v1", "--input", "reason=guard: worse = rolled back",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        inputs = {"version": "v1", "reason": "guard: worse = rolled back"}
        assert api.state.dispatches == [{"workflow": "rollback.yml", "ref": "main", "inputs": inputs}]
    refused = github_api(
        production_project, api, "dispatch", "--workflow", "x.yml", "--ref", "main", "--input", "novalue"
    )
    assert refused.returncode == 2 and "is not KEY=VALUE" in refused.stderr


def test_github_api_refuses_to_post_with_a_wrong_token(production_project, tmp_path):
    (tmp_path / "report.md").write_text("## AUC gate: PASSED\n")
    with GitHubStandIn(f"{OWNER}/fraud-detector", "another-token") as api:
        done = github_api(production_project, api, "comment", "--pr", "7", "--body-file", str(tmp_path / "report.md"))
        assert api.state.comments == {}
    assert done.returncode != 0 and "401" in done.stderr


@pytest.mark.slow
def test_install_scikit_learn_waits_for_a_first_deploy_and_names_what_it_cannot_read(
    checked_production_project, tmp_path
):
    # the paths that install nothing; the act run of rollback.yml below covers an install (the restored model's)
    python = str(checked_production_project / ".tox" / "test" / "bin" / "python")
    script = str(checked_production_project / ".github" / "scripts" / "install_scikit_learn.py")

    def install(*args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        return subprocess.run(
            [python, script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    first = install()
    assert (first.returncode, first.stdout) == (0, "no production model yet: keeping the scikit-learn it installed\n")
    no_target = install("previous")
    (tmp_path / "registry" / "models" / "v1").mkdir(parents=True)
    (tmp_path / "registry" / "models" / "v1" / "metadata.json").write_text("{broken")
    (tmp_path / "registry" / "stages").mkdir()
    (tmp_path / "registry" / "stages" / "production").write_text("v1\n")
    broken = install()
    for failed, problem in [(no_target, "production (None) replaced no earlier version"), (broken, "Expecting")]:
        assert failed.returncode == 1
        assert failed.stderr.startswith("error: cannot tell which scikit-learn saved the model: "), failed.stderr
        assert problem in failed.stderr and len(failed.stderr.splitlines()) == 1, failed.stderr


def registry_branch(clone: Path, *args: str) -> subprocess.CompletedProcess:
    """Run .github/scripts/registry-branch.sh in a clone, with a private git identity."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com", GITHUB_TOKEN="")
    script = clone / ".github" / "scripts" / "registry-branch.sh"
    return subprocess.run(["bash", str(script), *args], cwd=clone, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def two_clones(production_project, tmp_path) -> tuple[Path, Path, Path]:
    """A bare 'GitHub' repository holding the bake, and two clones of it (two concurrent jobs)."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(production_project), str(remote)], check=True)
    clones = []
    for name in ("job-a", "job-b"):
        subprocess.run(["git", "clone", "--quiet", str(remote), str(tmp_path / name)], check=True)
        clones.append(tmp_path / name)
    return remote, clones[0], clones[1]


def test_registry_branch_starts_empty_then_carries_each_push_to_the_next_job(two_clones):
    remote, first, second = two_clones
    pulled = registry_branch(first, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert "first deploy" in pulled.stdout and (first / "registry" / ".gitignore").is_file()
    (first / "registry" / "stages").mkdir()
    (first / "registry" / "stages" / "production").write_text("v1\n")
    (first / "registry" / ".lock").write_text("")
    pushed = registry_branch(first, "push", "production: (none) -> v1")
    assert pushed.returncode == 0, pushed.stderr

    assert registry_branch(second, "pull").returncode == 0
    assert (second / "registry" / "stages" / "production").read_text() == "v1\n"
    assert not (second / "registry" / ".lock").exists()
    log = subprocess.run(["git", "--git-dir", str(remote), "log", "--format=%s", "model-registry"], capture_output=True)
    assert log.stdout.decode().splitlines() == ["production: (none) -> v1"]


def test_registry_branch_never_commits_the_lock_or_the_temp_files_of_a_killed_writer(two_clones):
    remote, first, second = two_clones
    assert registry_branch(first, "pull").returncode == 0
    (first / "registry" / ".gitignore").write_text(".lock\n.incoming-*\n")  # as an older registry-branch.sh wrote it
    (first / "registry" / "stages").mkdir()
    (first / "registry" / "stages" / "production").write_text("v1\n")
    assert registry_branch(first, "push", "production: (none) -> v1").returncode == 0
    assert registry_branch(second, "pull").returncode == 0
    registry = second / "registry"
    (registry / ".lock").write_text("")
    (registry / "stages" / ".production-k1ll3d").write_text("v2\n")  # what kill -9 during a promotion leaves
    (registry / "models" / ".incoming-k1ll3d").mkdir(parents=True)  # and during a registration
    (registry / "models" / ".incoming-k1ll3d" / "model.skops").write_bytes(b"half")
    (registry / "stages" / "staging").write_text("v1\n")
    assert registry_branch(second, "push", "staging: (none) -> v1").returncode == 0
    tree = subprocess.run(
        ["git", "--git-dir", str(remote), "ls-tree", "-r", "--name-only", "model-registry"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert tree.stdout.splitlines() == [".gitignore", "stages/production", "stages/staging"]


def test_registry_branch_refuses_to_push_over_a_branch_that_moved(two_clones):
    remote, first, second = two_clones
    for clone in (first, second):
        assert registry_branch(clone, "pull").returncode == 0
    for clone, version in ((first, "v1"), (second, "v2")):
        (clone / "registry" / "stages").mkdir()
        (clone / "registry" / "stages" / "production").write_text(version)
    assert registry_branch(first, "push", "production: (none) -> v1").returncode == 0
    late = registry_branch(second, "push", "production: (none) -> v2")
    assert late.returncode == 1 and "moved since this job read it" in late.stdout
    shown = subprocess.run(
        ["git", "--git-dir", str(remote), "show", "model-registry:stages/production"], capture_output=True
    )
    assert shown.stdout == b"v1"


# ---------------------------------------------------------------------------------------------------------------
# the workflows, run with act
# ---------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def site_packages(venv: Path) -> Path:
    """The purelib folder of a virtual environment."""
    return Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))


class Deployments:
    """One bake going through CI, CD, retraining and rollback; each step runs once, after the ones it needs."""

    def __init__(self, checked_production_project: Path, work: Path, api: GitHubStandIn) -> None:
        """Copy the checked bake (without its environments) and prepare act's stand-ins."""
        self.api = api
        self.project = work / checked_production_project.name
        ignored = shutil.ignore_patterns(".tox", ".venv", "registry", "artifacts", "data", "build", "__pycache__")
        shutil.copytree(checked_production_project, self.project, ignore=ignored)
        # act 0.2.89's schema predates GitHub's `queue: max` (2026-05) and refuses the file; act ignores concurrency
        # anyway, so the copy it runs goes without it (the static tests above check the real files)
        for path in (self.project / ".github" / "workflows").glob("*.yml"):
            path.write_text(re.sub(r"(?m)^ *queue: max\n", "", path.read_text()))
        identity = ["-c", "user.name=Test Developer", "-c", "user.email=dev@example.com"]
        subprocess.run(
            ["git", *identity, "commit", "--quiet", "--all", "-m", "act: no queue"], cwd=self.project, check=True
        )
        packages = [site_packages(checked_production_project / ".tox" / env) for env in ("test", "lint")]
        self.act = ActHarness(
            self.project, work, packages, api.url, checked_production_project / ".tox" / "test" / "bin" / "python"
        )
        self.variables = {"DATA_WEEK": "0", "STAGING_PORT": str(free_port())}
        self.secrets = {"DEPLOY_HOOK_URL": f"{api.url}/deploy-hook"}
        self.timings: dict[str, float] = {}
        self.production_after: dict[str, str | None] = {}

    def after(self, step: str) -> ActRun:
        """Make sure an earlier step has run (each runs once) and return its run."""
        return getattr(self, step)

    def record(self, name: str, run: ActRun) -> ActRun:
        """Keep the run's duration (for the report printed at the end) and the production version it left."""
        self.timings[name] = run.seconds
        self.production_after[name] = self.production()
        return run

    def production(self) -> str | None:
        """The production version on the remote model-registry branch (None before the first deploy)."""
        try:
            return self.act.branch_file("stages/production").strip()
        except RuntimeError:
            return None

    def with_bug(self, message: str, branch: str | None = None) -> None:
        """Commit the subtle training bug."""
        train_py = next(self.project.glob("src/*/train.py"))
        source = train_py.read_text()
        assert BUG_BEFORE in source, "the bug's anchor line moved: update BUG_BEFORE"
        train_py.write_text(source.replace(BUG_BEFORE, BUG_AFTER))
        self.act.commit(message, branch)

    def pull_request(self, number: int, branch: str) -> dict:
        """The event payload of a same-repository pull request."""
        head = {"ref": branch, "sha": self.act.git("rev-parse", "HEAD").strip(), "repo": {"full_name": self.repo}}
        return {
            "number": number,
            "pull_request": {"number": number, "head": head, "base": {"ref": "main", "repo": {"full_name": self.repo}}},
            "repository": {"full_name": self.repo},
        }

    @property
    def repo(self) -> str:
        """owner/name as act reports it."""
        return self.act.repository

    @cached_property
    def first_deploy(self) -> ActRun:
        """cd.yml on a push to main: the first model goes to production."""
        run = self.act.run("push", "cd.yml", variables=self.variables, secrets=self.secrets)
        return self.record("first_deploy", run)

    @cached_property
    def ci_pass(self) -> ActRun:
        """ci.yml on a harmless pull request, after the first deploy."""
        self.after("first_deploy")
        (self.project / "NOTES.md").write_text("A harmless change.\n")
        self.act.commit("Add notes", branch="notes")
        run = self.act.run(
            "pull_request", "ci.yml", payload=self.pull_request(7, "notes"), variables=self.variables,
            matrix={"python-version": "3.12"},
        )  # fmt: skip
        self.act.git("checkout", "--quiet", "main")
        comments = self.api.state.comments.get(7, [])
        self.comment_after_ci_pass = comments[-1]["body"] if comments else ""
        return self.record("ci_pass", run)

    @cached_property
    def ci_blocked(self) -> ActRun:
        """ci.yml on a pull request carrying the subtle bug, after the passing one."""
        self.after("ci_pass")
        self.act.git("checkout", "--quiet", "notes")
        self.with_bug("Merchant risk as a percentage")
        run = self.act.run(
            "pull_request", "ci.yml", payload=self.pull_request(7, "notes"), variables=self.variables,
            matrix={"python-version": "3.12"},
        )  # fmt: skip
        self.act.git("checkout", "--quiet", "main")
        return self.record("ci_blocked", run)

    @cached_property
    def retrain(self) -> ActRun:
        """retrain.yml on its schedule with week 4's data, after the first deploy."""
        self.after("first_deploy")
        variables = {**self.variables, "DATA_WEEK": "4"}
        run = self.act.run("schedule", "retrain.yml", variables=variables, secrets=self.secrets)
        return self.record("retrain", run)

    @cached_property
    def retrain_blocked(self) -> ActRun:
        """retrain.yml on its schedule with the bug on main, after the good retrain; main is restored after."""
        self.after("retrain")
        self.with_bug("Merchant risk as a percentage")
        variables = {**self.variables, "DATA_WEEK": "5"}
        try:
            run = self.act.run("schedule", "retrain.yml", variables=variables, secrets=self.secrets)
        finally:
            self.act.git("reset", "--quiet", "--hard", "HEAD~1")
        return self.record("retrain_blocked", run)

    @cached_property
    def rollback(self) -> ActRun:
        """rollback.yml dispatched without a version, after both retrains."""
        self.after("retrain_blocked")
        run = self.act.run("workflow_dispatch", "rollback.yml", variables=self.variables, secrets=self.secrets)
        return self.record("rollback", run)

    @cached_property
    def monitor(self) -> ActRun:
        """monitor.yml on its schedule, last: the retrained model promoted again, then worse than its shadow live."""
        self.after("rollback")
        first, retrained = self.production_after["first_deploy"], self.production_after["retrain"]
        self.promote_on_branch(retrained)
        self.push_feedback_store(new=retrained, old=first)
        run = self.act.run("schedule", "monitor.yml", variables=self.variables)
        return self.record("monitor", run)

    def package_command(self, *args: str, cwd: Path, **env: str) -> None:
        """Run the bake's package (python -m, or -c code) with the act environment's Python and the bake's src."""
        package = next(self.project.glob("src/*/cli.py")).parent.name
        python = str(self.act.venv / "bin" / "python")
        done = subprocess.run(
            [python, *(["-m", f"{package}.cli"] if args[0] != "-c" else []), *args], cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(self.project / "src"), **env},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    def promote_on_branch(self, version: str) -> None:
        """Promote a registered version on the remote model-registry branch, as a deploy would."""
        clone = self.act.work / "registry-edit"
        self.act.git(
            "clone", "--quiet", "--branch", "model-registry", str(self.act.remote), clone.name, cwd=self.act.work
        )
        self.package_command("promote", version, "--reason", "promoted again by the test", cwd=clone,
                             MODEL_REGISTRY=str(clone))  # fmt: skip
        self.act.git("add", "--all", cwd=clone)
        self.act.git("commit", "--quiet", "-m", f"promote {version} again (test)", cwd=clone)
        self.act.git("push", "--quiet", "origin", "HEAD:refs/heads/model-registry", cwd=clone)

    def push_feedback_store(self, new: str, old: str) -> None:
        """A production-feedback branch on the remote holding predictions/ and feedback/."""
        store = self.act.work / "feedback-store"
        store.mkdir()
        package = next(self.project.glob("src/*/cli.py")).parent.name
        self.package_command("-c", FEEDBACK_STORE.format(package=package, new=new, old=old), cwd=store)
        self.act.git("init", "--quiet", "--initial-branch=production-feedback", cwd=store)
        self.act.git("add", "--all", cwd=store)
        self.act.git("commit", "--quiet", "-m", "a week of predictions and labels", cwd=store)
        self.act.git("push", "--quiet", str(self.act.remote), "HEAD:refs/heads/production-feedback", cwd=store)


@pytest.fixture(scope="module")
def deployments(checked_production_project, tmp_path_factory):
    """The act scenario; prints how long each workflow run took."""
    work = tmp_path_factory.mktemp("act")
    with GitHubStandIn(f"{OWNER}/{checked_production_project.name}", TOKEN) as api:
        scenario = Deployments(checked_production_project, work, api)
        try:
            yield scenario
        finally:
            scenario.act.stop_containers()
            print("\nact run times: " + ", ".join(f"{k} {v:.0f} s" for k, v in scenario.timings.items()))


def sklearn_of(deployments, version: str) -> str:
    """The scikit-learn version that saved a version on the registry branch."""
    return json.loads(deployments.act.branch_file(f"models/{version}/metadata.json"))["sklearn_version"]


def explain(run: ActRun) -> str:
    """The failing jobs and the end of act's log, as an assertion message."""
    return f"jobs: {run.jobs}\nlog: {run.log}\n" + run.text()[-6_000:]


@pytest.mark.act
def test_cd_deploys_the_first_model_and_records_it_on_the_registry_branch(deployments):
    run = deployments.first_deploy
    assert run.returncode == 0, explain(run)
    assert {run.jobs[j] for j in ("test", "staging", "production")} == {"success"}, explain(run)
    version = deployments.production_after["first_deploy"]
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", version)
    assert [s.split(" (run ")[0] for s in deployments.act.branch_log()] == [f"production: (none) -> {version}"]
    history = [json.loads(line) for line in deployments.act.branch_file("history.jsonl").splitlines()]
    assert [(e["action"], e["stage"], e["to"]) for e in history] == [
        ("register", None, version),
        ("promote", "staging", version),
        ("promote", "production", version),
    ]
    assert "staging" in run.text() and "rejected 11 bad requests with 4xx" in run.text()
    # each of the three jobs installed the project from uv.lock, with the locked scikit-learn that saved the model, and
    # nothing else installed scikit-learn (install_scikit_learn.py prints what it installs on a line of its own)
    assert len(re.findall(r"Resolved \d+ packages", run.text())) == 3, explain(run)
    assert re.findall(r"^ \+ scikit-learn==(\S+)$", run.text(), re.M) == [sklearn_of(deployments, version)] * 3
    assert not re.search(r"^scikit-learn==|Successfully installed .*scikit-learn", run.text(), re.M), explain(run)


@pytest.mark.act
def test_cd_publishes_the_image_as_its_version_and_production_then_calls_the_deploy_hook(deployments):
    run = deployments.first_deploy
    assert run.returncode == 0, explain(run)
    version, image = deployments.production_after["first_deploy"], f"ghcr.io/{deployments.repo}"
    pushes = deployments.act.pushed_images()[:2]
    assert [p["tag"] for p in pushes] == [f"{image}:{version}", f"{image}:production"]
    assert pushes[0]["image"] == pushes[1]["image"]
    assert deployments.api.state.hook_calls[0] == {"image": f"{image}:{version}", "version": version}


@pytest.mark.act
@pytest.mark.pull_requests
def test_ci_passes_a_harmless_change_and_comments_the_gate_report_once(deployments):
    run = deployments.ci_pass
    assert run.returncode == 0, explain(run)
    assert run.jobs == {
        "lint": "success",
        "test(python-version=3.12)": "success",
        "gate": "success",
        "audit": "success",
        "all-checks-pass": "success",
    }, explain(run)
    assert "pip-audit stand-in: offline" in run.text()
    report = deployments.comment_after_ci_pass
    assert "AUC gate: PASSED" in report and deployments.production_after["first_deploy"] in report
    # the same comment carries scored staging: the holdout served by the candidate's staging service, then gated
    assert "## Scored staging: PASSED" in report and "Candidate scores: as the staging service at" in report
    assert len(re.findall(r"Resolved \d+ packages", run.text())) == 4, explain(run)  # lint, test, gate, audit: uv.lock
    assert len(deployments.api.state.comments[7]) == 1


@pytest.mark.act
@pytest.mark.pull_requests
def test_ci_fails_when_a_change_breaks_the_gate_and_updates_the_same_comment(deployments):
    run = deployments.ci_blocked
    assert run.returncode != 0
    assert run.jobs["gate"] == "failure" and run.jobs["all-checks-pass"] == "failure", explain(run)
    assert run.jobs["lint"] == "success", explain(run)
    comments = deployments.api.state.comments[7]
    assert len(comments) == 1 and "AUC gate: BLOCKED" in comments[0]["body"]
    assert "lower bound" in comments[0]["body"]


@pytest.mark.act
def test_retrain_on_its_schedule_deploys_a_model_of_the_fresh_week(deployments):
    run = deployments.retrain
    assert run.returncode == 0, explain(run)
    before, after = deployments.production_after["first_deploy"], deployments.production_after["retrain"]
    assert after != before
    metadata = json.loads(deployments.act.branch_file(f"models/{after}/metadata.json"))
    assert "week-04" in metadata["train_data"]["path"]
    assert deployments.act.branch_log()[0].startswith(f"production: {before} -> {after}")


@pytest.mark.act
def test_a_blocked_retrain_changes_nothing_and_opens_one_issue_with_the_report(deployments):
    run = deployments.retrain_blocked
    assert run.returncode != 0
    assert run.jobs["staging"] == "failure" and run.jobs["report-blocked"] == "success", explain(run)
    assert "production" not in run.jobs, explain(run)
    assert deployments.production_after["retrain_blocked"] == deployments.production_after["retrain"]
    assert len([p for p in deployments.act.pushed_images() if p["tag"].endswith(":production")]) == 2
    issues = deployments.api.state.issues
    assert len(issues) == 1 and "AUC gate: BLOCKED" in issues[0]["body"]


@pytest.mark.act
def test_rollback_restores_the_previous_version_and_retags_its_image(deployments):
    run = deployments.rollback
    assert run.returncode == 0, explain(run)
    first, retrained = deployments.production_after["first_deploy"], deployments.production_after["retrain"]
    assert deployments.production_after["rollback"] == first != retrained
    last = json.loads(deployments.act.branch_file("history.jsonl").splitlines()[-1])
    assert (last["action"], last["from"], last["to"]) == ("rollback", retrained, first)
    assert deployments.act.branch_log()[0].startswith(f"rollback production: {retrained} -> {first}")
    restored = re.escape(sklearn_of(deployments, first))  # the restored model's own, printed by the script
    assert re.search(rf"^scikit-learn=={restored}$", run.text(), re.M), explain(run)
    image = f"ghcr.io/{deployments.repo}"
    pushes = deployments.act.pushed_images()
    first_image = next(p["image"] for p in pushes if p["tag"] == f"{image}:{first}")
    assert pushes[-1] == {"tag": f"{image}:production", "image": first_image}


@pytest.mark.act
@pytest.mark.pull_requests
def test_the_github_how_to_shows_the_job_summary_and_pull_request_comment_these_runs_write(deployments, update_docs):
    first_deploy, blocked = deployments.first_deploy, deployments.ci_blocked
    assert first_deploy.returncode == 0 and blocked.jobs.get("gate") == "failure", explain(blocked)
    # the staging job tees its summary into the gate-report artifact: the same bytes as its job summary
    artifacts = first_deploy.log.parent / "artifacts" / first_deploy.log.stem
    captured = {
        "cd-staging-job-summary.md": (artifacts / "gate-report" / "summary.md").read_text(),
        "ci-pull-request-comment.md": deployments.api.state.comments[7][0]["body"],
    }
    for name, text in captured.items():
        shown = CAPTURED / name
        if update_docs:
            CAPTURED.mkdir(exist_ok=True)
            shown.write_text(text.rstrip("\n") + "\n")
        assert shown.is_file() and matches(shown.read_text(), text), (
            f"docs/captured/{name} differs from this run: `pytest tests/test_workflows.py -m act -k how_to "
            f"--update-docs` rewrites it\n--- this run ---\n{text}"
        )


@pytest.mark.act
def test_monitor_hands_a_guard_rollback_to_rollback_yml_starts_a_retrain_and_opens_one_issue(deployments):
    run = deployments.monitor
    assert run.returncode == 0, explain(run)
    assert run.jobs == {"guard": "success", "monitor": "success", "report": "success"}, explain(run)
    first, retrained = deployments.production_after["first_deploy"], deployments.production_after["retrain"]
    dispatches = {dispatch["workflow"]: dispatch for dispatch in deployments.api.state.dispatches}
    assert dispatches.keys() == {"rollback.yml", "retrain.yml"}
    rollback = dispatches["rollback.yml"]
    assert (rollback["ref"], rollback["inputs"]["version"]) == ("main", first)
    assert rollback["inputs"]["reason"].startswith("guard: on 6000 live rows")
    assert dispatches["retrain.yml"] == {"workflow": "retrain.yml", "ref": "main", "inputs": {}}
    assert deployments.production_after["monitor"] == retrained  # rollback.yml moves production, not this workflow
    issues = [issue for issue in deployments.api.state.issues if "<!-- production-monitor -->" in issue["body"]]
    assert len(issues) == 1, deployments.api.state.issues
    assert "## Guard: ROLLBACK NEEDED" in issues[0]["body"] and "## Monitor: retrain advised" in issues[0]["body"]
