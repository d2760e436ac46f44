"""The generated Dockerfile, built and run with podman: the image serves its model, healthy, as a non-root user.

Nothing can be pulled here, so the base image is made locally (debootstrap of Debian with python3, imported
into podman) and stands in for python:<version>-slim through the BASE_IMAGE build argument. pip inside the
build still installs the project's dependencies from PyPI, pinned by the constraints file CI writes.
podman 4.3's default runtime (crun) cannot start containers on this kind of machine; runc can, given
explicit ulimits. Needs root, and Debian's podman, runc and debootstrap:

    apt-get install podman runc debootstrap
    pytest -m container          # or: tox -e container
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import run

pytestmark = pytest.mark.container

BASE_IMAGE = "localhost/cookiecutter-ml-cd-base:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PODMAN_RUN = ["--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run podman, capturing its output."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install podman runc debootstrap")
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def base_image() -> str:
    """A local Debian image with python3 and venv, made once per machine (about a minute)."""
    if podman("image", "exists", BASE_IMAGE).returncode == 0:
        return BASE_IMAGE
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs"
        packages = "--include=python3,python3-venv,ca-certificates"
        made = subprocess.run(
            ["debootstrap", "--variant=minbase", packages, "bookworm", str(rootfs), "http://deb.debian.org/debian"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert made.returncode == 0, made.stdout[-3_000:] + made.stderr[-3_000:]
        # this machine reaches PyPI through a proxy whose certificate authority the host trusts
        shutil.copy(HOST_CA_BUNDLE, rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "--change", f"ENV PIP_CERT={HOST_CA_BUNDLE}", "-", BASE_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tar.wait(timeout=60)
    assert imported.returncode == 0, imported.stderr
    return BASE_IMAGE


@pytest.fixture(scope="module")
def built_image(checked_project: Path, base_image: str, tmp_path_factory) -> tuple[str, Path, str]:
    """The default bake's image, built with a production model in its registry; yields (tag, project, version)."""
    project = tmp_path_factory.mktemp("container") / checked_project.name
    shutil.copytree(checked_project, project, ignore=shutil.ignore_patterns(".tox", "registry", "artifacts", "data"))
    tox_env = checked_project / ".tox" / "test"
    deployed = run([str(tox_env / "bin" / checked_project.name), "pipeline", "--skip-tests"], project, timeout=600)
    assert deployed.returncode == 0, deployed.stdout[-3_000:] + deployed.stderr[-2_000:]
    version = (project / "registry" / "stages" / "production").read_text().strip()
    frozen = run([sys.executable, "-m", "uv", "pip", "freeze", "--python", str(tox_env / "bin" / "python")], project)
    assert frozen.returncode == 0, frozen.stderr
    pins = [line for line in frozen.stdout.splitlines() if "==" in line and " @ " not in line]
    (project / "constraints.txt").write_text("\n".join(pins) + "\n")
    tag = f"localhost/{checked_project.name}:test"
    built = podman(
        "build", "--format", "docker", "--isolation", "chroot", "--build-arg", f"BASE_IMAGE={base_image}",
        "--tag", tag, str(project),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-5_000:] + built.stderr[-3_000:]
    yield tag, project, version
    podman("rmi", "--force", tag)


@pytest.fixture(scope="module")
def container(built_image) -> tuple[str, str, Path, str]:
    """The image running detached with its port published on 127.0.0.1; yields (name, base URL, project, version)."""
    tag, project, version = built_image
    name, port = f"{project.name}-test", free_port()
    podman("rm", "--force", name)
    started = podman(
        *PODMAN_RUN, "run", "--detach", "--name", name, "--publish", f"127.0.0.1:{port}:8000", *LIMITS, tag
    )
    assert started.returncode == 0, started.stderr
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, name)
        yield name, base, project, version
    finally:
        podman("rm", "--force", name)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(base: str, name: str, seconds: float = 90) -> None:
    """Poll /ready until it answers 200; fail with the container's log after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(1)
    pytest.fail(f"{base}/ready never answered 200:\n" + podman("logs", name).stderr[-3_000:])


def test_the_image_passes_the_smoke_test_ci_runs_on_staging(container, checked_project):
    name, base, project, version = container
    smoke = run(
        [str(checked_project / ".tox" / "test" / "bin" / "fraud-detector"), "smoke-test", base,
         "--version", version, "--week", "0"],
        project,
    )  # fmt: skip
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr + podman("logs", name).stderr[-3_000:]
    assert f"answered {version} and rejected 11 bad requests with 4xx" in smoke.stdout


def test_the_image_reports_its_model_version(container):
    _, base, _, version = container
    with urllib.request.urlopen(base + "/version", timeout=5) as response:
        assert json.loads(response.read())["model_version"] == version


def test_the_image_healthcheck_reports_healthy(container):
    name, *_ = container
    checked = podman(*PODMAN_RUN, "healthcheck", "run", name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_service_runs_as_a_user_other_than_root(container):
    name, *_ = container
    whoami = podman(*PODMAN_RUN, "exec", name, "id", "-u")
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == "10001"


def test_the_image_without_a_registry_folder_does_not_build(built_image, base_image, tmp_path):
    _, project, _ = built_image
    bare = tmp_path / project.name
    shutil.copytree(project, bare, ignore=shutil.ignore_patterns("registry"))
    refused = podman("build", "--isolation", "chroot", "--build-arg", f"BASE_IMAGE={base_image}", str(bare))
    assert refused.returncode != 0
    assert "registry" in refused.stderr + refused.stdout
