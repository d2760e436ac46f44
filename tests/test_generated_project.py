"""Inside a bake: the project's own checks pass, and its local CD loop deploys, blocks, rolls back and retrains."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import clean_env, run

pytestmark = pytest.mark.slow

# the tutorial's "subtle bug": merchant risk turned into a percentage at training time only
BUG_BEFORE = "    return build_model(seed).fit(data.X, data.y)\n"
BUG_AFTER = (
    "    X = data.X.copy()\n"
    "    X[:, 2] *= 100  # merchant risk as a percentage\n"
    "    return build_model(seed).fit(X, data.y)\n"
)


def cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the project's console script from its tox test environment."""
    return run([str(project / ".tox" / "test" / "bin" / "fraud-detector"), *args], project, timeout=300)


def production(project: Path) -> str:
    """The version the production pointer names."""
    return (project / "registry" / "stages" / "production").read_text().strip()


def served_version(port: int) -> str:
    """The version a running service answers /version with."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as response:
        return json.loads(response.read())["model_version"]


class Load(threading.Thread):
    """Posts one valid transaction after another until stopped, keeping every failure."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/predict"
        self.stop = threading.Event()
        self.answered: list[str] = []
        self.failures: list[str] = []

    def run(self) -> None:
        body = json.dumps(EXAMPLE).encode()
        while not self.stop.is_set():
            request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.answered.append(json.loads(response.read())["model_version"])
            except Exception as error:  # any failure is what this load is looking for
                self.failures.append(repr(error))


EXAMPLE = {
    "amount": 42.5,
    "hour": 14,
    "merchant_risk": 0.2,
    "distance_from_home_km": 3.0,
    "card_present": True,
    "transactions_last_24h": 2,
}

# promote and roll back production 20 times, 0.1 s apart, through the registry's own API
FLIP = """
import sys, time
from fraud_detector.registry import Registry
registry = Registry("registry")
for _ in range(20):
    registry.rollback(reason="load test")
    time.sleep(0.1)
    registry.promote(sys.argv[1], "production", reason="load test")
    time.sleep(0.1)
"""


def wait_for(condition, seconds: float = 30):
    """Poll ``condition`` until it returns a truthy value or time runs out (then fail)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"condition not met within {seconds} s")


def test_default_bake_passes_its_own_lint_and_tests(checked_project):
    assert (checked_project / ".tox" / "test" / "bin" / "fraud-detector").is_file()


def test_the_production_loop_bake_passes_its_own_lint_and_tests(checked_production_project):
    assert (checked_production_project / ".tox" / "test" / "bin" / "fraud-detector").is_file()


def test_fuzz_of_the_service_under_gunicorn_passes(checked_project):
    # the bake's normal test run skips this part (it starts gunicorn); `tox -e fuzz` runs it with 10,000 requests
    pytest_bin = str(checked_project / ".tox" / "test" / "bin" / "pytest")
    command = [pytest_bin, "tests/test_fuzz.py", "-k", "gunicorn", "-p", "no:cacheprovider", "-q", "-s", "-n", "0"]
    result = run(command, checked_project, timeout=300, FUZZ_EXAMPLES="300")
    assert result.returncode == 0, result.stdout[-5_000:] + result.stderr[-2_000:]
    assert "1 passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2_000:]
    sent = re.search(r"fuzz, gunicorn: (\d+) requests", result.stdout)
    assert sent and int(sent.group(1)) >= 300, result.stdout[-2_000:]


def test_the_service_under_gunicorn_holds_slow_clients_and_answers_json(checked_project):
    # the bake's normal test run leaves out its tests marked "server" (they start gunicorn): run them here
    pytest_bin = str(checked_project / ".tox" / "test" / "bin" / "pytest")
    result = run([pytest_bin, "-m", "server", "-n", "0", "-p", "no:cacheprovider", "-q"], checked_project, timeout=600)
    assert result.returncode == 0, result.stdout[-5_000:] + result.stderr[-2_000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 8 and "skipped" not in result.stdout, result.stdout[-2_000:]


def test_local_cd_loop_deploys_blocks_a_subtle_bug_rolls_back_and_retrains(checked_project):
    project = checked_project
    first = cli(project, "pipeline", "--skip-tests")
    assert first.returncode == 0, first.stdout + first.stderr
    week0 = production(project)
    assert "rejected 11 bad requests with 4xx" in first.stdout
    *stages, where = first.stdout.splitlines()  # one line per stage, then where the full log is
    assert all(re.match(r"\[\d+/\d+\] \w+ +\d+\.\d s  \S", line) for line in stages), first.stdout
    assert where.startswith("log: logs/pipeline-") and "[1/" in (project / where.removeprefix("log: ")).read_text()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(project / ".tox/test/bin/fraud-detector"), "serve", "--port", str(port)],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: served_version(port) == week0)

        train_py = next(project.glob("src/*/train.py"))
        source = train_py.read_text()
        assert BUG_BEFORE in source
        train_py.write_text(source.replace(BUG_BEFORE, BUG_AFTER))
        blocked = cli(project, "pipeline", "--skip-tests")
        train_py.write_text(source)
        assert blocked.returncode == 1
        assert "FAILED at stage gate_candidate" in blocked.stdout and "lower bound" in blocked.stdout
        assert production(project) == week0

        week1 = cli(project, "pipeline", "--skip-tests", "--week", "1")
        assert week1.returncode == 0, week1.stdout
        assert production(project) != week0
        assert wait_for(lambda: served_version(port) == production(project))

        rollback = cli(project, "rollback")
        assert rollback.returncode == 0, rollback.stderr
        assert production(project) == week0
        assert wait_for(lambda: served_version(port) == week0)
        history = cli(project, "history").stdout
        assert "rollback" in history

        diff = cli(project, "diff", week0, production(project))
        assert diff.returncode == 0

        flagged = cli(project, "monitor", "--week", "4")
        assert flagged.returncode == 1 and "ALERT" in flagged.stdout, flagged.stdout
        retrained = cli(project, "pipeline", "--skip-tests", "--week", "4")
        assert retrained.returncode == 0, retrained.stdout
        assert wait_for(lambda: served_version(port) == production(project) != week0)
        assert cli(project, "monitor", "--week", "4").returncode == 0

        load = Load(port)
        load.start()
        python = str(project / ".tox" / "test" / "bin" / "python")
        flips = run([python, "-c", FLIP, production(project)], project, timeout=300)
        time.sleep(1)
        load.stop.set()
        load.join(timeout=15)
        assert flips.returncode == 0, flips.stderr
        assert load.failures == []
        assert len(set(load.answered)) == 2, "both versions must have answered while production flipped"
    finally:
        server.terminate()
        server.wait(timeout=15)


# run in the bake's interpreter: scrape /metrics and parse it with prometheus-client's own parser
SCRAPE = """
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
print(json.dumps([[s.name, s.labels, s.value] for s in samples]))
"""


def post_all(port: int, request_ids: list[str], echoed: list[str]) -> None:
    """POST the example transaction once per client request id, each on a new connection; keep the ids answered."""
    for request_id in request_ids:
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", json.dumps(EXAMPLE).encode(), headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            echoed.append(response.headers["X-Request-ID"])


def test_two_gunicorn_workers_log_every_row_with_the_shadow_and_metrics_add_up(checked_production_project, tmp_path):
    project, bin_dir = checked_production_project, checked_production_project / ".tox" / "test" / "bin"
    script, folder = str(bin_dir / "fraud-detector"), tmp_path / "predictions"
    env = {"MODEL_REGISTRY": str(tmp_path / "registry")}
    versions = []
    for week in ("0", "1"):  # production (week 1) replaced week 0, which the shadow scores
        trained = run([script, "train", "--week", week], project, timeout=300, **env)
        assert trained.returncode == 0, trained.stderr
        version, model = trained.stdout.split()
        for step in (["register", model], ["promote", version]):
            assert run([script, *step], project, **env).returncode == 0
        versions.append(version)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [script, "serve", "--port", str(port), "--workers", "2", "--shadow", "previous"],
        cwd=project,
        env=clean_env(PREDICTION_LOG=str(folder), **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: served_version(port) == versions[1])
        sent, echoed = [f"gunicorn-{number}" for number in range(200)], []
        threads = [threading.Thread(target=post_all, args=(port, sent[i::8], echoed)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(set(echoed)) == len(sent) and not set(echoed) & set(sent)  # the service draws each request's id

        def records() -> list[dict]:
            return [json.loads(line) for path in folder.glob("*.jsonl") for line in path.read_text().splitlines()]

        assert wait_for(lambda: len(records()) == len(sent))
        assert sorted(r["request_id"] for r in records()) == sorted(echoed)
        assert sorted(r["client_request_id"] for r in records()) == sorted(sent)  # the client's own, logged only
        assert {(r["index"], r["model_version"], r["shadow_version"]) for r in records()} == {(0, *versions[::-1])}
        assert all(r["row"] == EXAMPLE and 0 <= r["score"] <= 1 and 0 <= r["shadow_score"] <= 1 for r in records())
        # a file per worker process, named by its pid; a gevent worker may take every request, so one or two pids
        writers = {path.name.split("-")[2] for path in folder.glob("predictions-*.jsonl")}
        assert 1 <= len(writers) <= 2, writers

        scraped = run([str(bin_dir / "python"), "-c", SCRAPE, f"http://127.0.0.1:{port}/metrics"], project)
        assert scraped.returncode == 0, scraped.stderr
        samples = {(name, tuple(sorted(labels.items()))): value for name, labels, value in json.loads(scraped.stdout)}
        prefix = "fraud_detector_"
        assert samples[(prefix + "requests_total", (("endpoint", "/predict"), ("status", "200")))] == 200
        assert samples[(prefix + "prediction_log_written_total", ())] == 200
        assert samples[(prefix + "score_count", (("model_version", versions[1]),))] == 200
        assert samples[(prefix + "model_info", (("model_version", versions[1]), ("role", "serving")))] == 1
        assert samples[(prefix + "model_info", (("model_version", versions[0]), ("role", "shadow")))] == 1
    finally:
        server.terminate()
        server.wait(timeout=15)
