"""Run a generated project's GitHub workflows on this machine with act, offline.

What stands in for what (the workflows themselves run unchanged):
- the GitHub repository: a local bare repository; `git` reaches it through a url.insteadOf rule in a private
  global git config, so act still sees the repository as `acme/<slug>` from its `origin` URL;
- actions/checkout: act's own (it copies the local work tree); every other `uses:` is replaced by a small
  local action under stubs/ through --local-repository (the flags are built from the workflows' own lines);
- actions/setup-python: a virtual environment first on PATH, whose packages come from the bake's tox
  environments through a .pth file, with pip told to use no index, and the pinned uv installed: the workflows'
  `uv sync --locked` builds the project's .venv from uv.lock (uv's cache, else PyPI);
- docker: bin/docker (see its docstring); api.github.com and the deploy hook: github_standin.py, through
  GITHUB_API_URL and the DEPLOY_HOOK_URL secret;
- pip-audit (which asks PyPI for advisories): bin/pip-audit. The audit job installs the real one from uv.lock and
  puts .venv/bin on GITHUB_PATH, ahead of act's PATH: so every bash step first sources a BASH_ENV file that puts
  bin/ (the stand-ins, docker and pip-audit) in front again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUBS = HERE / "stubs"
OWNER = "acme"
TOKEN = "ghs_stand-in-token"
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})\b", re.MULTILINE)
# colours and cursor moves, which uv writes into the steps' output here
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def tool(name: str) -> str:
    """A command installed next to the running Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: add it to requirements-dev.txt")
    return found


def pinned_actions(workflows: Path) -> set[tuple[str, str]]:
    """Every (owner/repo, sha) that the workflows use."""
    return {m for path in sorted(workflows.glob("*.yml")) for m in USES.findall(path.read_text())}


def local_repository_flags(workflows: Path) -> list[str]:
    """--local-repository flags pointing every non-checkout action at its stub (fails if one has none)."""
    flags = []
    for repository, sha in sorted(pinned_actions(workflows)):
        if repository == "actions/checkout":
            continue
        stub = STUBS / repository.split("/", 1)[1]
        if not (stub / "action.yml").is_file():
            raise FileNotFoundError(f"no stand-in for {repository} under {STUBS}: add one")
        flags += ["--local-repository", f"{repository}@{sha}={stub}"]
    return flags


@dataclass
class ActRun:
    """The outcome of one act invocation."""

    returncode: int
    jobs: dict[str, str]
    lines: list[dict]
    seconds: float
    log: Path

    def text(self) -> str:
        """Every message act printed, in order (step output included), without terminal escape sequences."""
        return ANSI.sub("", "\n".join(str(line.get("msg", "")) for line in self.lines))

    def failed_jobs(self) -> list[str]:
        """The jobs whose result was not success."""
        return [job for job, result in self.jobs.items() if result != "success"]


class ActHarness:
    """One project repository, its bare 'GitHub' remote, and the stand-ins shared by its workflow runs."""

    def __init__(self, project: Path, work: Path, site_packages: list[Path], api_url: str, python: Path) -> None:
        """Prepare git, a ``python`` environment seeing ``site_packages``, and state folders under ``work``."""
        self.project, self.work, self.api_url = project, work, api_url
        self.slug = project.name
        self.repository = f"{OWNER}/{self.slug}"
        self.remote = work / "remote.git"
        self.docker_state = work / "docker"
        self.venv = work / "venv"
        self.runs = 0
        (work / "tmp").mkdir()
        # bash reads this before each `run:` script, after act prepended the GITHUB_PATH entries to PATH
        self.bash_env = work / "stand-ins-first.sh"
        self.bash_env.write_text(f'PATH="{HERE / "bin"}:$PATH"\n')
        self._git_config()
        self._remote()
        self._venv(python, site_packages)

    def _git_config(self) -> None:
        """A private global git config: identity, and the GitHub URL rewritten to the bare repository."""
        self.git_config = self.work / "gitconfig"
        self.git_config.write_text(
            "[user]\n\tname = Test Developer\n\temail = dev@example.com\n"
            f'[url "{self.remote.as_uri()}"]\n\tinsteadOf = https://github.com/{self.repository}.git\n'
            "[init]\n\tdefaultBranch = main\n"
        )

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """Run git with the private config; return its output."""
        env = {**os.environ, "GIT_CONFIG_GLOBAL": str(self.git_config), "GIT_CONFIG_NOSYSTEM": "1"}
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.project, env=env, capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def _remote(self) -> None:
        """The bare repository standing in for GitHub, with main pushed to it."""
        self.git("init", "--quiet", "--bare", str(self.remote), cwd=self.work)
        if not (self.project / ".git").is_dir():
            self.git("init", "--quiet")
            self.git("add", "--all")
            self.git("commit", "--quiet", "-m", "Initial commit")
        self.git("remote", "add", "origin", f"https://github.com/{self.repository}.git")
        self.git("push", "--quiet", "origin", "HEAD:refs/heads/main")

    def _venv(self, python: Path, site_packages: list[Path]) -> None:
        """A virtual environment with pip and setuptools (no download) that sees the bake's packages."""
        command = [sys.executable, "-m", "virtualenv", "--quiet", "--no-download", "--setuptools", "bundle"]
        subprocess.run([*command, "--python", str(python), str(self.venv)], check=True, timeout=300)
        purelib = Path(sysconfig.get_path("purelib", vars={"base": str(self.venv), "platbase": str(self.venv)}))
        (purelib / "_bake_packages.pth").write_text("".join(f"{path}\n" for path in site_packages))
        # a .pth file brings packages, not their commands: ruff is a native binary, so it is linked in
        for folder in site_packages:
            ruff = folder.parents[2] / "bin" / "ruff"
            if ruff.is_file() and not (self.venv / "bin" / "ruff").exists():
                (self.venv / "bin" / "ruff").symlink_to(ruff)
        # the workflows' `pip install --require-hashes -r .github/requirements-uv.txt` finds this uv installed (pip runs
        # with no index); uv then installs the project from uv.lock out of its cache (PyPI for what is not there)
        pinned = re.search(r"^uv==\S+", (self.project / ".github" / "requirements-uv.txt").read_text(), re.M)[0]
        install = [tool("uv"), "pip", "install", "--quiet", "--python", str(self.venv / "bin" / "python"), pinned]
        subprocess.run(install, check=True, timeout=300)

    def commit(self, message: str, branch: str | None = None) -> None:
        """Commit every change in the project (on a new branch if given)."""
        if branch:
            self.git("checkout", "--quiet", "-B", branch)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)

    def branch_file(self, path: str, branch: str = "model-registry") -> str:
        """A file of a branch of the remote."""
        return self.git("--git-dir", str(self.remote), "show", f"{branch}:{path}", cwd=self.work)

    def branch_log(self, branch: str = "model-registry") -> list[str]:
        """Commit subjects of a branch of the remote, newest first."""
        return self.git("--git-dir", str(self.remote), "log", "--format=%s", branch, cwd=self.work).splitlines()

    def pushed_images(self) -> list[dict]:
        """Every image push the docker stand-in recorded, oldest first."""
        pushed = self.docker_state / "pushed.jsonl"
        return [json.loads(line) for line in pushed.read_text().splitlines()] if pushed.is_file() else []

    def environment(self) -> dict[str, str]:
        """The environment act (and so every step) runs in."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("TOX_", "VIRTUAL_ENV", "PYTHON", "PIP_"))}
        path = [p for p in keep.get("PATH", "").split(os.pathsep) if p and ".tox" not in p]
        return {
            **keep,
            "PATH": os.pathsep.join([str(self.venv / "bin"), str(HERE / "bin"), *path]),
            "GIT_CONFIG_GLOBAL": str(self.git_config),
            "GIT_CONFIG_NOSYSTEM": "1",
            "PIP_NO_INDEX": "1",
            "PIP_NO_BUILD_ISOLATION": "0",
            "BASH_ENV": str(self.bash_env),
            "FAKE_DOCKER_STATE": str(self.docker_state),
            # the workflows run pytest too: its temp folders must not rotate away the outer session's
            "PYTEST_DEBUG_TEMPROOT": str(self.work / "tmp"),
        }

    def run(
        self,
        event: str,
        workflow: str,
        *,
        payload: dict | None = None,
        inputs: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        matrix: dict[str, str] | None = None,
        timeout: float = 1_200,
    ) -> ActRun:
        """Run one workflow for one event; the log goes to a file (never a pipe, which can stall act)."""
        self.runs += 1
        name = f"{self.runs:02d}-{workflow.removesuffix('.yml')}-{event}"
        log = self.work / f"{name}.log"
        artifacts = self.work / "artifacts" / name
        artifacts.mkdir(parents=True)
        command = [
            tool("act"), event,
            "--workflows", f".github/workflows/{workflow}",
            "--platform", "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--action-cache-path", str(self.work / "act-cache"),
            "--concurrent-jobs", "1",
            "--json",
            "--actor", "test-developer",
            "--secret", f"GITHUB_TOKEN={TOKEN}",
            "--env", f"GITHUB_API_URL={self.api_url}",
            "--env", f"ARTIFACT_STUB_DIR={artifacts}",
            "--env", f"FAKE_DOCKER_STATE={self.docker_state}",
            *local_repository_flags(self.project / ".github" / "workflows"),
        ]  # fmt: skip
        if payload is not None:
            event_file = self.work / f"{name}.event.json"
            event_file.write_text(json.dumps(payload))
            command += ["--eventpath", str(event_file)]
        for flag, values in (("--input", inputs), ("--var", variables), ("--secret", secrets)):
            for key, value in (values or {}).items():
                command += [flag, f"{key}={value}"]
        for key, value in (matrix or {}).items():
            command += ["--matrix", f"{key}:{value}"]
        started = time.monotonic()
        with log.open("w") as output:
            done = subprocess.run(
                command, cwd=self.project, env=self.environment(), stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=timeout,
            )  # fmt: skip
        seconds = time.monotonic() - started
        lines = []
        for raw in log.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"msg": raw})
        jobs = {}
        for line in lines:
            if "jobResult" in line:
                matrix_id = ",".join(f"{k}={v}" for k, v in sorted((line.get("matrix") or {}).items()))
                jobs[line["jobID"] + (f"({matrix_id})" if matrix_id else "")] = line["jobResult"]
        return ActRun(done.returncode, jobs, lines, seconds, log)

    def stop_containers(self) -> None:
        """Stop every service the docker stand-in started and left running."""
        containers = self.docker_state / "containers.json"
        if containers.is_file():
            for container in json.loads(containers.read_text()).values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(container["pid"], signal.SIGKILL)
