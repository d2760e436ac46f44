"""The docs build, their generated reference matches a fresh bake, and the tutorial's commands do what it says."""

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

DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"
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
    exit_code: int = 0
    expect: list[str] = field(default_factory=list)
    shown: str = ""  # the page's text between this block and the next bash block: what the learner should see


def tutorial_blocks(text: str) -> list[Block]:
    """Every ```bash block; a `<!-- run [exit=N] [expect="..."]... -->` comment just above marks it runnable."""
    fence = re.compile(r"(?:<!-- run(?P<attrs>[^\n]*?)-->\n)?```bash\n(?P<code>.*?)\n```\n", re.S)
    matches = list(fence.finditer(text))
    blocks = []
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(text)
        block = Block(match["code"], text.count("\n", 0, match.start()) + 1, match["attrs"] is not None)
        block.shown = text[match.end() : end]
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


BLOCKS = tutorial_blocks(TUTORIAL.read_text())
# the blocks the test replaces with its own equivalent: bake with defaults, install with uv, push to GitHub
NOT_RUN = ("cookiecutter path/to/cookiecutter-ml-cd", "pip install -e '.[test]'", "git push -u origin main")


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
    tutorial = re.sub(r"<[^>]+>", "", (tmp_path / "site" / "tutorial" / "index.html").read_text())
    assert "def fit(data: Dataset" in tutorial  # a snippet copied from the bake, not typed into the page
    assert "fraud-detector pipeline" in tutorial


def test_every_generated_file_is_shown_on_some_page():
    pages = "\n".join(page.read_text() for page in DOCS.rglob("*.md") if "generated" not in page.parts)
    included = set(re.findall(r'^--8<-- "([^"]+)"$', pages, flags=re.M))
    folder = DOCS / "generated"
    generated = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
    assert generated <= included, f"generated but shown nowhere: {sorted(generated - included)}"


def test_every_marked_comment_precedes_a_bash_block():
    text = TUTORIAL.read_text()
    assert text.count("<!-- run") == sum(block.run for block in BLOCKS) > 10


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


def test_kubernetes_manifest_probes_endpoints_the_service_has():
    manifest = list(yaml.safe_load_all((DOCS / "how-to" / "kubernetes.yaml").read_text()))
    deployment = next(doc for doc in manifest if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    api = (DOCS / "generated" / "api.md").read_text()
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready" and "`GET /ready`" in api
    assert container["livenessProbe"]["httpGet"]["path"] == "/health" and "`GET /health`" in api
    assert container["securityContext"]["runAsNonRoot"] is True


@pytest.fixture(scope="module")
def installed_bake(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh default bake installed (editable, with its test extra) in its own virtual environment."""
    work = tmp_path_factory.mktemp("docs")
    project = gen_reference.bake(work)
    python = gen_reference.install(project, project / ".venv")
    return project, python


@pytest.mark.slow
def test_generated_reference_matches_a_fresh_bake(installed_bake, tmp_path):
    project, python = installed_bake
    gen_reference.generate(project, python, tmp_path / "generated")
    committed = DOCS / "generated"
    fresh = {p.relative_to(tmp_path / "generated") for p in (tmp_path / "generated").rglob("*") if p.is_file()}
    assert fresh == {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()}, (
        "run `python docs/gen_reference.py`"
    )
    stale = [str(p) for p in sorted(fresh) if (committed / p).read_bytes() != (tmp_path / "generated" / p).read_bytes()]
    assert not stale, f"docs/generated is out of date for {stale}: run `python docs/gen_reference.py`"


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


@pytest.mark.slow
def test_tutorial_runs_in_order_and_shows_what_it_says(installed_bake, tmp_path):
    project, python = installed_bake
    venv_bin = python.parent
    # bisect builds each commit's locked environment with uv (the README installs uv first), in this test's cache
    uv_bin = str(Path(gen_reference.find_uv()).parent)
    env = clean_env(
        PATH=os.pathsep.join([str(venv_bin), uv_bin, clean_env()["PATH"]]),
        VIRTUAL_ENV=str(venv_bin.parent),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        GIT_AUTHOR_NAME="Tutorial Reader",
        GIT_AUTHOR_EMAIL="reader@example.com",
        GIT_COMMITTER_NAME="Tutorial Reader",
        GIT_COMMITTER_EMAIL="reader@example.com",
    )
    port = str(free_port())  # the page says 8000; another process on this machine may hold it
    shell = Shell(project, env, tmp_path)
    try:
        for number, block in enumerate(BLOCKS):
            if not block.run:
                continue
            status, output, failed = shell.run(number, block.code.replace("8000", port), BLOCK_TIMEOUT)
            where = f"tutorial line {block.line}:\n{block.code}\n--- output ---\n{output[-4000:]}"
            assert status == block.exit_code, f"exit status {status}, expected {block.exit_code}; {where}"
            if block.exit_code == 0:
                assert not failed, f"these commands failed: {failed}; {where}"
            pointer = project / "registry" / "stages" / "production"
            production = pointer.read_text().strip() if pointer.is_file() else "(no production pointer)"
            for expected in block.expect:
                expected = expected.replace(PRODUCTION, production)
                assert expected in output, f"{expected!r} not in the output; {where}"
    finally:
        shell.stop()
