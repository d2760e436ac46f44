"""The docs build, their generated reference matches a fresh bake, and the tutorial's commands print what it shows.

The tutorial is run block by block in one shell, from the README quickstart's project, on a machine where git has
no identity. A ```text block right after a runnable block is what that block prints: the test compares them beyond
ids, hashes and times (tests/shown_output.py); `pytest tests/test_docs.py -k tutorial --update-docs` rewrites them.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, clean_env
from shown_output import matches, normalise, refreshed
from workflow_support.act import tool

DOCS = ROOT / "docs"
# part 1 (the hello world), then part 2 (the production loop, added to the same project): run as one session
TUTORIAL_PAGES = (DOCS / "tutorial.md", DOCS / "tutorial-production.md")
# where part 2 names the learner's clone of the template, the test puts this repository
TEMPLATE_CLONE = "../cookiecutter-ml-cd"
BLOCK_TIMEOUT = 300  # seconds for one tutorial block (a pipeline run takes about 20)
# in an expected text, {production} stands for the version production points at when the block has run
PRODUCTION = "{production}"
VERSION = r"\d{8}-\d{6}-[0-9a-f]{8}"

_spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
gen_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_reference)


@dataclass
class Block:
    """A fenced bash block of the tutorial, whether the test runs it, and what it must print."""

    code: str
    line: int
    run: bool
    page: Path = TUTORIAL_PAGES[0]
    exit_code: int = 0
    expect: list[str] = field(default_factory=list)
    shown: str = ""  # the page's text between this block and the next bash block: what the learner should see
    output: tuple[int, int] | None = None  # where the page shows what the block prints: its first ```text block


def tutorial_blocks(page: Path) -> list[Block]:
    """Every ```bash block; a `<!-- run [exit=N] [expect="..."]... -->` comment just above marks it runnable."""
    text = page.read_text()
    fence = re.compile(r"(?:<!-- run(?P<attrs>[^\n]*?)-->\n)?```bash\n(?P<code>.*?)\n```\n", re.S)
    matches = list(fence.finditer(text))
    blocks = []
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(text)
        block = Block(match["code"], text.count("\n", 0, match.start()) + 1, match["attrs"] is not None, page)
        block.shown = text[match.end() : end]
        if block.run and (shown := re.search(r"```text\n(.*?)\n```\n", block.shown, re.S)):
            block.output = (match.end() + shown.start(1), match.end() + shown.end(1))
        for token in shlex.split(match["attrs"] or ""):
            key, _, value = token.partition("=")
            if key == "exit":
                block.exit_code = int(value)
            elif key == "expect":
                block.expect.append(value)
            else:
                raise ValueError(f"tutorial line {block.line}: unknown run attribute {key!r}")
        blocks.append(block)
    return blocks


BLOCKS = [block for page in TUTORIAL_PAGES for block in tutorial_blocks(page)]
# the blocks the test cannot run: the push to GitHub
NOT_RUN = ("git push -u origin main",)


def test_docs_build_strictly_with_snippets_from_the_bake(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    own_data = re.sub(r"<[^>]+>", "", (tmp_path / "site" / "how-to" / "own-data" / "index.html").read_text())
    assert "FEATURES: tuple[Feature, ...] = (" in own_data  # a snippet copied from the bake, not typed into the page
    tutorial = re.sub(r"<[^>]+>", "", (tmp_path / "site" / "tutorial" / "index.html").read_text())
    assert "fraud-detector pipeline" in tutorial


def test_every_generated_file_is_shown_on_some_page():
    pages = "\n".join(page.read_text() for page in DOCS.rglob("*.md") if "generated" not in page.parts)
    included = set(re.findall(r'^--8<-- "([^"]+)"$', pages, flags=re.M))
    folder = DOCS / "generated"
    generated = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    assert generated <= included, f"generated but shown nowhere: {sorted(generated - included)}"


@pytest.mark.parametrize("page", TUTORIAL_PAGES, ids=lambda page: page.name)
def test_every_marked_comment_precedes_a_bash_block(page):
    marked = page.read_text().count("<!-- run")
    assert marked == sum(block.run for block in BLOCKS if block.page == page) > 3


def test_every_tutorial_block_is_run_or_replaced_by_the_test():
    not_run = [block for block in BLOCKS if not block.run]
    assert len(not_run) == len(NOT_RUN)
    for block, command in zip(not_run, NOT_RUN, strict=True):
        assert command in block.code, f"tutorial line {block.line}: mark it <!-- run --> or list it in NOT_RUN"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.expect], ids=lambda b: f"line-{b.line}")
def test_what_the_tutorial_checks_is_what_it_shows_the_learner(block):
    for expected in block.expect:
        pattern = re.escape(expected).replace(re.escape(PRODUCTION), VERSION)
        assert re.search(pattern, block.shown), f"tutorial line {block.line}: {expected!r} is checked but not shown"


def test_shown_outputs_ignore_ids_hashes_times_and_ports_but_not_counts_or_scores():
    run_a = "[1/9] run_tests  50.6 s  232 passed in 47.04s\n[3/9] train_model  0.6 s  trained 20261130-142230-63c8c3cf"
    run_b = "[1/9] run_tests  41.0 s  232 passed in 39.10s\n[3/9] train_model  1.1 s  trained 20261201-090000-0a1b2c3d"
    assert matches(run_a, run_b)
    assert not matches(run_a, run_b.replace("232 passed", "225 passed"))
    commits = "[main 7fea642] Revert\n git_commit 52be1e61e67f2f8869cf03f41dabae5322f2a56d at 2026-11-26T15:34:55+00:00"
    assert matches(commits, "[main 0123456] Revert\n git_commit " + "a" * 40 + " at 2026-12-01T08:00:00+00:00")
    assert not matches('{"auc":0.8921}', '{"auc":0.8922}')
    assert matches("std_error: 0.00982318034292853", "std_error: 0.009823180342928528")  # the last bits of a sum
    assert not matches("std_error: 0.00982318034292853", "std_error: 0.009823180343928528")
    assert matches("staging on http://127.0.0.1:44913 answered", "staging on http://127.0.0.1:38679 answered")
    assert matches("232 passed in 47.04s", "232 passed in 70.48s (0:01:10)")
    assert matches("[8/10] smoke_test_staging     21.7 s  staging", "[8/10] smoke_test_staging      6.0 s  staging")
    assert matches(" Date: Mon Nov 30 14:45:01 2026 +0000", " Date: Tue Dec  1 09:00:00 2026 +0000")


def test_an_ellipsis_line_stands_for_any_lines_and_an_update_keeps_it():
    shown = "[1/3] a  1.0 s  first\n...\n[3/3] c  1.0 s  old result"
    actual = "[1/3] a  2.0 s  first\n[2/3] b  0.1 s  more\nextra\n[3/3] c  0.3 s  new result\n"
    assert matches(shown, actual.replace("new result", "old result"))
    assert not matches(shown, actual)
    assert refreshed(shown, actual) == "[1/3] a  2.0 s  first\n...\n[3/3] c  0.3 s  new result"
    assert refreshed("x\n...\nkept middle\n...\ny", "x\nother\ny") == "x\nother\ny"  # kept line gone: all of it
    assert matches("usage: tool [-h]\n            ...", "usage: tool [-h]\n            ...\n")  # indented: literal
    assert not matches("usage: tool [-h]\n            ...", "usage: tool [-h]\nmore\n            ...\n")


def test_every_runnable_tutorial_block_that_prints_something_the_reader_needs_shows_it():
    silent = [block.code for block in BLOCKS if block.run and block.output is None]
    assert all("kill" in code or "rm -rf" in code or "activate" in code for code in silent), silent


def test_readme_links_pages_of_docs_that_read_whole_unbuilt():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 5 and all((ROOT / link).is_file() for link in links), links
    assert "OWNER.github.io" not in readme  # no site yet: the repository's Markdown is what a reader has
    for page in {ROOT / link for link in links}:  # what only a build includes, the page also links, for a reader
        text = page.read_text()
        for included in re.findall(r'--8<-- "([^"]+)"', text):
            target = (DOCS / included) if (DOCS / included).is_file() else (DOCS / "generated" / included)
            linked = {(page.parent / link).resolve() for link in re.findall(r"\]\(([^)#\s]+)\)", text)}
            assert target.resolve() in linked, f"{page.name} includes {included} without a link to it"


@pytest.mark.parametrize("linter", ["zizmor", "actionlint", "check-jsonschema"])
def test_the_template_repositorys_own_workflows_lint_clean(linter):
    files = sorted(str(path) for path in (ROOT / ".github" / "workflows").glob("*.yml"))
    command = {
        "zizmor": [tool("zizmor"), "--offline", "--persona", "pedantic", str(ROOT / ".github")],
        "actionlint": [tool("actionlint"), "-no-color", *files],
        "check-jsonschema": [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
    }[linter]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_docs_workflow_builds_strictly_and_deploys_only_main_to_pages():
    docs = yaml.safe_load((ROOT / ".github" / "workflows" / "docs.yml").read_text())
    build, deploy = docs["jobs"]["build"], docs["jobs"]["deploy"]
    assert any("mkdocs build --strict" in step.get("run", "") for step in build["steps"])
    assert docs["permissions"] == {} and build["permissions"] == {"contents": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages" and "refs/heads/main" in deploy["if"]
    assert [step["uses"].split("@")[0] for step in deploy["steps"]] == ["actions/deploy-pages"]


def test_kubernetes_manifest_probes_endpoints_the_service_has():
    manifest = list(yaml.safe_load_all((DOCS / "how-to" / "kubernetes.yaml").read_text()))
    deployment = next(doc for doc in manifest if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    api = (DOCS / "generated" / "api.md").read_text()
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready" and "`GET /ready`" in api
    assert container["livenessProbe"]["httpGet"]["path"] == "/health" and "`GET /health`" in api
    assert container["securityContext"]["runAsNonRoot"] is True


def without_git_identity(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a machine where git knows no one: an empty HOME, no system config, no GIT_* variables."""
    env = {k: v for k, v in clean_env(**extra).items() if not k.startswith("GIT_") and k != "EMAIL"}
    return {**env, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}


def quickstart_commands() -> list[str]:
    """The README quickstart's one command line, split at its `&&`s."""
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)[0].split(" && ")


@pytest.fixture(scope="module")
def installed_bake(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A default bake made where git has no identity, installed in its own .venv; also the empty HOME it used."""
    work, home = tmp_path_factory.mktemp("docs"), tmp_path_factory.mktemp("home")
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(ROOT), "--output-dir", str(work)]
    subprocess.run(command, env=without_git_identity(home), check=True, capture_output=True, timeout=300)
    project = work / "fraud-detector"
    # the README's own install, `.venv/bin/uv sync ...` with the template's uv: the locked versions, on the Python of
    # the project's .python-version, as the reader gets them
    (sync,) = [part for part in quickstart_commands() if part.startswith(".venv/bin/uv sync ")]
    command = [gen_reference.find_uv(), *sync.split()[1:]]
    command[command.index("--directory") + 1] = str(project)
    done = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3_000:] + done.stderr[-3_000:]
    return project, project / ".venv" / "bin" / "python", home


@pytest.fixture(scope="module")
def installed_production_bake(tmp_path_factory) -> tuple[Path, Path]:
    """A bake with the production loop, as the reference documents both layers, installed in its own .venv."""
    project = gen_reference.bake(tmp_path_factory.mktemp("reference"))
    return project, gen_reference.install(project, project / ".venv")


@pytest.mark.slow
def test_generated_reference_matches_a_fresh_bake(installed_production_bake, tmp_path):
    project, python = installed_production_bake
    gen_reference.generate(project, python, tmp_path / "generated")
    committed = DOCS / "generated"
    fresh = {p.relative_to(tmp_path / "generated") for p in (tmp_path / "generated").rglob("*") if p.is_file()}
    assert fresh == {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()}, (
        "run `python docs/gen_reference.py`"
    )
    stale = [str(p) for p in sorted(fresh) if (committed / p).read_bytes() != (tmp_path / "generated" / p).read_bytes()]
    assert not stale, f"docs/generated is out of date for {stale}: run `python docs/gen_reference.py`"


@pytest.mark.slow
def test_the_gate_pages_small_holdout_warning_is_the_one_the_gate_prints(installed_production_bake):
    project, python = installed_production_bake
    shown = re.search(r"^> \*\*Warning:\*\* (.+)$", (DOCS / "explanation" / "gate.md").read_text(), re.M)
    # the page's 12 rows: 2 positives and 10 negatives, both models ranking them perfectly (AUC 1, paired SE 0)
    code = (
        "from fraud_detector import gate; "
        "print(gate.holdout_warning(gate.AucEstimate(1.0, 0.0, 1.0, 1.0, 0.95, 2, 10), 0.01))"
    )
    printed = subprocess.run([str(python), "-c", code], cwd=project, capture_output=True, text=True, check=True)
    assert shown is not None and shown.group(1) == printed.stdout.strip()


class Shell:
    """One bash process that runs blocks in turn, like a learner's terminal: variables and jobs persist."""

    def __init__(self, cwd: Path, env: dict[str, str], work: Path) -> None:
        """Start bash in a new session, so everything it starts can be stopped together."""
        self.work = work
        self.process = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._send('set -o pipefail\ntrap \'echo "$BASH_COMMAND" >> "$ERRORS"\' ERR\n')

    def _read(self) -> None:
        """Forward the shell's own output (only end-of-block markers) line by line."""
        for line in self.process.stdout:
            self.lines.put(line)

    def _send(self, text: str) -> None:
        """Write commands to the shell's standard input."""
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def run(self, number: int, code: str, timeout: float) -> tuple[int, str, list[str]]:
        """Run a block; return its exit status, its output, and every command in it that failed."""
        script, output, errors = (self.work / f"block-{number:02d}.{kind}" for kind in ("sh", "out", "err"))
        script.write_text(code + "\n")
        errors.write_text("")
        errors_file, script_file, output_file = (shlex.quote(str(path)) for path in (errors, script, output))
        self._send(f"ERRORS={errors_file}; source {script_file} > {output_file} 2>&1 < /dev/null\n")
        self._send('echo "__block_done__ $?"\n')
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"block {number} did not finish within {timeout} s:\n{code}\n{output.read_text()[-3000:]}")
            if line.startswith("__block_done__"):
                status = int(line.split()[1])
                return status, output.read_text(), [e for e in errors.read_text().splitlines() if e]

    def stop(self) -> None:
        """Stop the shell and everything it started (a server left running by a failed block included)."""
        group = self.process.pid  # start_new_session made bash the leader of its own process group
        for sig, seconds in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self._group_alive(group):
                time.sleep(0.2)
            if not self._group_alive(group):
                break
        self.process.wait(timeout=5)

    def _group_alive(self, group: int) -> bool:
        """Whether any process of the group is still running (reaping bash itself once it exits)."""
        self.process.poll()
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def quickstart_project(installed_bake) -> tuple[Path, Path, Path]:
    """Where the README's quickstart leaves a learner: the bake installed in .venv, after one pipeline run.

    The quickstart's own run also runs the tests first; this one skips them (the tutorial runs them again).
    """
    project, python, home = installed_bake
    last = quickstart_commands()[-1]
    assert last.endswith("fraud-detector pipeline"), "the quickstart no longer ends with the pipeline"
    command = [str(project / last.split()[0]), *last.split()[1:], "--skip-tests"]
    done = subprocess.run(command, cwd=project, env=without_git_identity(home), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return installed_bake


def show_differences(blocks: list[tuple[Block, str]]) -> str:
    """Each shown output that the run contradicts, beside what the run printed (both normalised)."""
    return "\n".join(
        f"{block.page.name} line {block.line}: the page shows\n"
        f"{normalise(block.page.read_text()[slice(*block.output)])}\n"
        f"--- but the run printed ---\n{normalise(output)}\n"
        for block, output in blocks
    )


def update_tutorial(outputs: list[tuple[Block, str]]) -> None:
    """Rewrite the outputs the tutorial's pages show from this run (from the last, so earlier offsets hold)."""
    for page in TUTORIAL_PAGES:
        text = page.read_text()
        shown = [(block, output) for block, output in outputs if block.page == page]
        for block, output in sorted(shown, key=lambda pair: pair[0].output, reverse=True):
            start, end = block.output
            text = text[:start] + refreshed(text[start:end], output) + text[end:]
        page.write_text(text)


@pytest.mark.slow
def test_tutorial_runs_in_order_from_the_quickstart_and_prints_what_it_shows(quickstart_project, tmp_path, update_docs):
    project, python, home = quickstart_project
    venv_bin = python.parent
    # nothing on PATH but the project's venv, as the reader's shell after `source .venv/bin/activate`: bisect finds
    # uv in that venv (the test extra), and builds each commit's locked environment in this test's cache
    env = without_git_identity(
        home,
        PATH=os.pathsep.join([str(venv_bin), clean_env()["PATH"]]),
        VIRTUAL_ENV=str(venv_bin.parent),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        COLUMNS="100",  # --help wraps at the terminal's width
        LOGNAME="alice",  # the user the registry's history names
        USER="alice",
    )
    env.pop("GITHUB_ACTOR", None)
    port = str(free_port())  # the page says 8000; another process on this machine may hold it
    shell = Shell(project, env, tmp_path)
    outputs = []
    try:
        for number, block in enumerate(BLOCKS):
            if not block.run:
                continue
            code = block.code.replace("8000", port).replace(TEMPLATE_CLONE, str(ROOT))
            status, output, failed = shell.run(number, code, BLOCK_TIMEOUT)
            where = f"{block.page.name} line {block.line}:\n{block.code}\n--- output ---\n{output[-4000:]}"
            assert status == block.exit_code, f"exit status {status}, expected {block.exit_code}; {where}"
            if block.exit_code == 0:
                assert not failed, f"these commands failed: {failed}; {where}"
            pointer = project / "registry" / "stages" / "production"
            production = pointer.read_text().strip() if pointer.is_file() else "(no production pointer)"
            for expected in block.expect:
                expected = expected.replace(PRODUCTION, production)
                assert expected in output, f"{expected!r} not in the output; {where}"
            if block.output is not None:  # the service's port as the page and the reader have it
                outputs.append((block, output.replace(f"127.0.0.1:{port}", "127.0.0.1:8000")))
    finally:
        shell.stop()
    if update_docs:
        update_tutorial(outputs)
    else:
        stale = [
            (block, output)
            for block, output in outputs
            if not matches(block.page.read_text()[slice(*block.output)], output)
        ]
        assert not stale, "run `pytest tests/test_docs.py -k tutorial --update-docs`:\n" + show_differences(stale)
