"""Serving benchmark: the generated service side by side with the model in process, a bare Flask app and MLflow.

Usage (from the template repository, with wrk installed: `apt-get install -y wrk`):

    python bench/serving.py                          # everything, 3 repetitions of 2 s runs (about 5 minutes)
    python bench/serving.py --duration 15            # the issue's 15 s runs (about 20 minutes)
    python bench/serving.py --tune                   # gunicorn workers / threads / worker class of the shipped service
    python bench/serving.py --targets shipped-lr,bare-flask-lr --repeat 1
    python bench/serving.py --profile --targets shipped-lr,layer-lr   # py-spy: where a worker's time goes
    python bench/serving.py --memory                 # each process's memory, hello world and layer

Any Python 3.10+ with cookiecutter and uv runs it (e.g. the template's dev venv). It bakes the template with
default answers into ``--work`` (default /tmp/bench-serving, reused when it is already there), installs the
project into its own venv, runs ``<slug> pipeline --skip-tests`` for the default production model, trains a
HistGradientBoostingClassifier on the same features into a second registry, and logs the default model with
``mlflow.sklearn`` into a local store in a separate venv (mlflow, uvicorn[standard], fastapi, the same
scikit-learn). It also bakes the production loop's layer (production_loop=true) into ``--work``/layer, with a second
version in staging, and serves it three ways: as it is (metrics, request ids), with the prediction log on, and with
the shadow on. Then, for each repetition, every server is started, measured with wrk and stopped in turn:

* 1-row requests/s at 16 connections (wrk -t2 -c16), p50/p99 latency at 1 connection (wrk -t1 -c1 --latency),
  100-row batch rows/s at 16 connections, peak RSS (sum of VmHWM over the server's processes) and cold start
  (process start to the first 200 from the scoring endpoint, model load included).

Every server listens on a free 127.0.0.1 port; every run is bounded. Thread-pool variables (OMP_NUM_THREADS...)
are removed from the servers' environment, so each one runs with its own defaults. The table printed at the end
(medians of the repetitions) is Markdown; ``--json`` also writes every raw measurement.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import timeit
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TEMPLATE = BENCH.parent
LUA = BENCH / "post.lua"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GUNICORN_CMD_ARGS")
MLFLOW_PACKAGES = ("mlflow", "uvicorn[standard]", "fastapi", "skops")
BATCH = 100


# ---------------------------------------------------------------------------------------------------------------
# Setting up: a baked project with two production models, and an MLflow venv with the same model
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Lab:
    """Everything the servers need: the baked project, its venv, both registries, bodies and the MLflow model."""

    work: Path
    project: Path
    python: Path
    script: Path
    registries: dict[str, Path]
    bodies: Path
    ml_python: Path | None = None
    mlflow_uri: str = ""
    layer: Path | None = None  # a bake with production_loop=true: its project; its console script beside it
    layer_script: Path | None = None
    mlflow_tracking: str = ""


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list, **options) -> str:
    """Run a command to completion (10 minutes at most) and return its stdout; fail loudly with its output."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=600, **options)
    if result.returncode:
        raise SystemExit(
            f"ERROR: {' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    return result.stdout


def uv() -> list[str]:
    """The uv command: the module next to this Python, else uv on PATH."""
    if importlib.util.find_spec("uv"):
        return [sys.executable, "-m", "uv"]
    if shutil.which("uv"):
        return ["uv"]
    raise SystemExit("ERROR: uv is needed to build the benchmark venvs: pip install uv")


def bake(work: Path, template: Path = TEMPLATE, *answers: str) -> Path:
    """Bake a template (default: this one) with default answers, or these, into ``work``; return the project."""
    before = {path for path in work.iterdir() if path.is_dir()}
    run([sys.executable, "-m", "cookiecutter", "--no-input", template, "-o", work, *answers])
    (project,) = {path for path in work.iterdir() if path.is_dir()} - before
    return project


def find_project(work: Path) -> Path | None:
    """The baked project in ``work``, if there is one."""
    found = [path.parent for path in work.glob("*/pyproject.toml") if (path.parent / "src").is_dir()]
    return found[0] if len(found) == 1 else None


def console_script(project: Path) -> str:
    """The project's console script name, read from its pyproject.toml."""
    match = re.search(r"\[project\.scripts\]\s*\n\s*\"?([\w.-]+)\"?\s*=", (project / "pyproject.toml").read_text())
    if not match:
        raise SystemExit(f"ERROR: no [project.scripts] entry in {project / 'pyproject.toml'}")
    return match.group(1)


def prepare_lab(
    work: Path, with_mlflow: bool, template: Path = TEMPLATE, with_layer: bool = False, answers: tuple[str, ...] = ()
) -> Lab:
    """Bake (with default answers, or these), install, train and log the models once; later runs reuse ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    project = find_project(work)
    if project is None:
        say(f"baking {template} into {work}")
        project = bake(work, template, *answers)
    python = work / "venv" / "bin" / "python"
    if not python.exists():
        say("creating the project venv")
        run([*uv(), "venv", "-q", work / "venv"])
        run([*uv(), "pip", "install", "-q", "--compile-bytecode", "--python", python, "-e", project])
    script = python.parent / console_script(project)
    lab = Lab(
        work, project, python, script, {"lr": project / "registry", "hgb": project / "registry-hgb"}, work / "bodies"
    )
    if not (lab.registries["lr"] / "stages" / "production").exists():
        say("running the pipeline for the default production model")
        run([script, "pipeline", "--skip-tests"], cwd=project, env=server_env({"MODEL_REGISTRY": ""}))
    if not (lab.registries["hgb"] / "stages" / "production").exists():
        say("training a HistGradientBoostingClassifier on the same features")
        hgb_env = server_env({"PYTHONPATH": str(hgb_src(project))})
        run([python, __file__, "_train_hgb", project, lab.registries["hgb"]], cwd=project, env=hgb_env)
    if not (lab.bodies / "one.json").exists():
        run([python, __file__, "_bodies", project, lab.bodies], cwd=project, env=server_env())
    if with_mlflow:
        prepare_mlflow(lab)
    if with_layer:
        prepare_layer(lab, template)
    return lab


def prepare_layer(lab: Lab, template: Path) -> None:
    """The same service with the production loop's layer: a bake with production_loop=true, its venv, its pipeline."""
    folder = lab.work / "layer"
    folder.mkdir(exist_ok=True)
    lab.layer = find_project(folder)
    if lab.layer is None:
        say("baking the production loop's layer (production_loop=true)")
        lab.layer = bake(folder, template, "production_loop=true")
    python = folder / "venv" / "bin" / "python"
    if not python.exists():
        say("creating the layer's venv")
        run([*uv(), "venv", "-q", folder / "venv"])
        run([*uv(), "pip", "install", "-q", "--compile-bytecode", "--python", python, "-e", lab.layer])
    lab.layer_script = python.parent / console_script(lab.layer)
    if not (lab.layer / "registry" / "stages" / "production").exists():
        say("running the layer's pipeline")
        run([lab.layer_script, "pipeline", "--skip-tests"], cwd=lab.layer, env=server_env({"MODEL_REGISTRY": ""}))
        say("training another version for the shadow (staging)")  # a shadow of the served version scores nothing
        layer_env = server_env({"MODEL_REGISTRY": ""})
        version, folder = run([lab.layer_script, "train", "--seed", "1"], cwd=lab.layer, env=layer_env).split()[-2:]
        run([lab.layer_script, "register", folder], cwd=lab.layer, env=layer_env)
        run([lab.layer_script, "promote", version, "--stage", "staging"], cwd=lab.layer, env=layer_env)


def prepare_mlflow(lab: Lab) -> None:
    """A venv with MLflow (same scikit-learn and numpy as the project) and the default model logged into it."""
    lab.ml_python = lab.work / "mlflow-venv" / "bin" / "python"
    if not lab.ml_python.exists():
        say("creating the MLflow venv")
        pins = json.loads(
            run(
                [
                    lab.python,
                    "-c",
                    "import json, numpy, sklearn; print(json.dumps("
                    "[f'numpy=={numpy.__version__}', f'scikit-learn=={sklearn.__version__}']))",
                ]
            )
        )
        run([*uv(), "venv", "-q", lab.work / "mlflow-venv"])
        run([*uv(), "pip", "install", "-q", "--python", lab.ml_python, *MLFLOW_PACKAGES, *pins])
    uri_file = lab.work / "mlflow-model-uri.txt"
    if not uri_file.exists():
        say("logging the default model with mlflow.sklearn into a local store (sqlite + artifact folder)")
        store = lab.work / "mlruns"
        out = run(
            [lab.ml_python, __file__, "_mlflow_model", production_folder(lab, "lr"), store, lab.bodies],
            env=server_env(),
        )
        uri_file.write_text(out.strip().splitlines()[-1])
    lab.mlflow_uri = uri_file.read_text().strip()
    lab.mlflow_tracking = tracking_uri(lab.work / "mlruns")


def production_folder(lab: Lab, model: str) -> Path:
    """The model folder the production pointer of a registry names."""
    registry = lab.registries[model]
    return registry / "models" / (registry / "stages" / "production").read_text().strip()


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without thread-pool limits, so every server runs with its own defaults."""
    env = {key: value for key, value in os.environ.items() if key not in THREAD_VARIABLES}
    env.update(extra or {})
    return {key: value for key, value in env.items() if value}


# ---------------------------------------------------------------------------------------------------------------
# Helpers that run inside the project venv or the MLflow venv (called as `python serving.py _name ...`)
# ---------------------------------------------------------------------------------------------------------------
def package_of(project: Path) -> str:
    """The import name of a baked project's package."""
    (service,) = (project / "src").glob("*/service.py")
    return service.parent.name


def week_0_files(data_dir: Path) -> tuple[Path, Path]:
    """The pipeline's week-0 CSVs: the same place in every version of the template (before issue 10 too)."""
    return Path(data_dir) / "week-00" / "train.csv", Path(data_dir) / "week-00" / "holdout.csv"


HGB_BUILD_MODEL = '''def build_model(seed: int = 0) -> Pipeline:
    """Return the untrained model: gradient-boosted trees."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return Pipeline([("classify", HistGradientBoostingClassifier(random_state=seed))])

'''


def hgb_src(project: Path) -> Path:
    """A copy of the project's src whose build_model() builds gradient-boosted trees.

    A project loads only models of the estimator its train.py builds: the gradient-boosting model is trained and
    served by this copy, first on PYTHONPATH.
    """
    copy = project / "src-hgb"
    if not copy.exists():
        shutil.copytree(project / "src", copy)
        (train,) = copy.glob("*/train.py")
        text = train.read_text()
        start = text.index("def build_model(")
        end = text.index("\ndef ", start) + 1
        train.write_text(text[:start] + HGB_BUILD_MODEL + text[end:])
    return copy


def train_hgb(project: Path, registry_root: Path) -> None:
    """Train the HistGradientBoosting model of hgb_src() on the week-0 data; make it production in its own registry."""
    package = package_of(project)
    train = importlib.import_module(f"{package}.train")
    registry = importlib.import_module(f"{package}.registry")
    config = importlib.import_module(f"{package}.config")
    assert "HistGradientBoosting" in repr(train.build_model()), "run with hgb_src() first on PYTHONPATH"
    train_csv, holdout_csv = week_0_files(config.load_settings().data_dir)
    folder, metadata = train.train(train_csv, holdout_csv, project / "artifacts-hgb", seed=0)
    models = registry.Registry(registry_root)
    models.register(folder, reason="serving benchmark: gradient boosting")
    models.promote(metadata["version"], "production", reason="serving benchmark: gradient boosting")


def write_bodies(project: Path, out: Path) -> None:
    """Request bodies from real holdout rows: 1 and 100 named objects, and MLflow's {"inputs": [...]} form."""
    package = package_of(project)
    features = importlib.import_module(f"{package}.features").FEATURES
    data = importlib.import_module(f"{package}.data")
    settings = importlib.import_module(f"{package}.config").load_settings()
    _, holdout_csv = week_0_files(settings.data_dir)
    X = data.read_csv(holdout_csv).X[:BATCH]
    cast = {"float": float, "int": int, "bool": bool}
    rows = [{f.name: cast[f.kind](value) for f, value in zip(features, row, strict=True)} for row in X]
    out.mkdir(parents=True, exist_ok=True)
    (out / "one.json").write_text(json.dumps(rows[0]))
    (out / "batch.json").write_text(json.dumps(rows))
    (out / "mlflow-one.json").write_text(json.dumps({"inputs": X[:1].tolist()}))
    (out / "mlflow-batch.json").write_text(json.dumps({"inputs": X.tolist()}))


def load_estimator(folder: Path):
    """Load a model folder's skops file, trusting the scikit-learn types it holds (as artifact.load does)."""
    import skops.io

    model_file = folder / "model.skops"
    return skops.io.load(model_file, trusted=skops.io.get_untrusted_types(file=model_file))


def tracking_uri(store: Path) -> str:
    """The MLflow tracking URI of the local store: a sqlite file in ``store``."""
    return f"sqlite:///{store.resolve() / 'mlflow.db'}"


def log_mlflow_model(folder: Path, store: Path, bodies: Path) -> None:
    """(MLflow venv) Log the same estimator with mlflow.sklearn into the local store; print its model URI."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow.models import infer_signature

    estimator = load_estimator(folder)
    X = np.array(json.loads((bodies / "mlflow-batch.json").read_text())["inputs"], dtype=float)
    store.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri(store))  # MLflow 3 refuses a plain folder store: sqlite is its local store
    experiment = mlflow.create_experiment("serving-benchmark", artifact_location=(store / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            signature=infer_signature(X, estimator.predict_proba(X)),
            pyfunc_predict_fn="predict_proba",
        )
    print(info.model_uri)


def in_process(folder: Path, bodies: Path, seconds: float) -> None:
    """(project venv) Time the model's own predict_proba on 1 and 100 rows; print seconds per call as JSON."""
    import numpy as np

    estimator = load_estimator(folder)
    X = np.array(json.loads((bodies / "mlflow-batch.json").read_text())["inputs"], dtype=float)
    result = {}
    for rows in (1, BATCH):
        block = np.ascontiguousarray(X[:rows])
        estimator.predict_proba(block)
        timer = timeit.Timer(lambda block=block: estimator.predict_proba(block))
        number, _ = timer.autorange()
        number = max(1, int(number * seconds / 0.2))
        result[rows] = timer.timeit(number) / number
    print(json.dumps(result))


def bare_flask_app():
    """The simplest thing that works: Flask, the same model, no validation (gunicorn factory, BENCH_MODEL=folder)."""
    import numpy as np
    from flask import Flask, jsonify, request

    folder = Path(os.environ["BENCH_MODEL"])
    model = load_estimator(folder)
    names = [feature["name"] for feature in json.loads((folder / "metadata.json").read_text())["features"]]
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        """Score one object or a list of them."""
        body = request.get_json()
        rows = body if isinstance(body, list) else [body]
        X = np.array([[row[name] for name in names] for row in rows], dtype=float)
        probabilities = model.predict_proba(X)[:, 1].tolist()
        return jsonify(fraud_probability=probabilities if isinstance(body, list) else probabilities[0])

    return app


def fastapi_app():
    """A bare FastAPI app with the same model, for uvicorn --factory (BENCH_MODEL=folder)."""
    import numpy as np
    from fastapi import FastAPI, Request

    folder = Path(os.environ["BENCH_MODEL"])
    model = load_estimator(folder)
    names = [feature["name"] for feature in json.loads((folder / "metadata.json").read_text())["features"]]
    app = FastAPI()

    async def predict(request):
        """Score one object or a list of them."""
        body = await request.json()
        rows = body if isinstance(body, list) else [body]
        X = np.array([[row[name] for name in names] for row in rows], dtype=float)
        probabilities = model.predict_proba(X)[:, 1].tolist()
        return {"fraud_probability": probabilities if isinstance(body, list) else probabilities[0]}

    # real annotations: this module's `from __future__ import annotations` would leave FastAPI a string
    predict.__annotations__ = {"request": Request, "return": dict}
    app.post("/predict")(predict)
    return app


def threadpool_app():
    """A WSGI app reporting the native thread pools a worker would use for a gradient-boosting model."""
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime, as a model load would)
    from threadpoolctl import threadpool_info

    def app(environ, start_response):
        """Answer every request with threadpoolctl's report for this worker."""
        body = json.dumps(threadpool_info()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


# ---------------------------------------------------------------------------------------------------------------
# Running servers and wrk
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """One server to measure: how to start it and where to POST its 1-row and 100-row bodies."""

    name: str
    label: str
    command: list
    path: str
    one: Path
    batch: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body: bytes, timeout: float = 2) -> int:
    """POST a JSON body; return the HTTP status (0 when nothing answered)."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def peak_rss_mb(pid: int) -> float:
    """Sum of the peak resident set size (VmHWM) of a process and its descendants, in MB."""
    total = 0
    for process in descendants(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024


def memory_by_process(pid: int) -> list[dict]:
    """Each process of a server: its role, peak RSS (VmHWM), RSS now and PSS (shared pages split among sharers), MB."""
    found = []
    for process in descendants(pid):
        try:
            status = Path(f"/proc/{process}/status").read_text()
            rollup = Path(f"/proc/{process}/smaps_rollup").read_text()
        except OSError:
            continue

        def kb(text: str, field: str) -> float:
            match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
            return int(match.group(1)) / 1024 if match else 0.0

        role = "master" if process == pid else "worker"
        found.append(
            {"role": role, "peak_rss": kb(status, "VmHWM"), "rss": kb(status, "VmRSS"), "pss": kb(rollup, "Pss")}
        )
    return found


def memory(lab: Lab) -> str:
    """Where the memory goes: every process of each server, after 2 s of 100-row batches at 16 connections."""
    targets = make_targets(lab, tune=False)
    lines = ["| server | process | peak RSS MB | RSS MB | PSS MB |", "|---|---|--:|--:|--:|"]
    for name in ("shipped-lr", "bare-flask-lr", "layer-lr", "layer-lr-log", "layer-lr-shadow"):
        if name not in targets:
            continue
        with Server(targets[name], lab.work) as server:
            server.start()
            wrk(server.url, targets[name].batch, 16, 2)
            processes = memory_by_process(server.process.pid)
        for process in processes:
            figures = " | ".join(f"{process[key]:,.0f}" for key in ("peak_rss", "rss", "pss"))
            lines.append(f"| {name} | {process['role']} | {figures} |")
        totals = " | ".join(f"**{sum(p[key] for p in processes):,.0f}**" for key in ("peak_rss", "rss", "pss"))
        lines.append(f"| {name} | all | {totals} |")
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by a process and its descendants, in seconds."""
    ticks = 0
    for process in descendants(pid):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of /proc/<pid>/stat
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """A server process in its own session: started, waited for, measured and stopped by its process group."""

    def __init__(self, target: Target, work: Path) -> None:
        """Prepare to start ``target``; its output goes to a log file under ``work``."""
        self.target, self.port = target, free_port()
        self.url = f"http://127.0.0.1:{self.port}{target.path}"
        self.log = work / "logs" / f"{target.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        """Start the server; return seconds from process start to the first 200 from the scoring endpoint."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [str(part).replace("{port}", str(self.port)) for part in self.target.command]
        body = self.target.one.read_bytes()
        started = time.monotonic()
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.target.cwd,
                env=self.target.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.process.returncode}; see {self.log}")
            if post(self.url, body) == 200:
                return time.monotonic() - started
            time.sleep(0.02)
        raise RuntimeError(f"{self.target.name} did not answer 200 within {timeout} s; see {self.log}")

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> Server:
        """Nothing to do: call start() to get the cold start."""
        return self

    def __exit__(self, *exc) -> None:
        """Always stop the server."""
        self.stop()


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    requests: int
    failed: int
    errors: str = ""
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(
    url: str, body: Path, connections: int, seconds: int, latency: bool = False, server: int | None = None
) -> WrkResult:
    """Run wrk with the POST script for ``seconds``; failed = non-2xx responses plus socket errors.

    With ``server`` (a pid), also count the CPU time the server's processes and wrk itself used: unlike
    requests/s, CPU per request hardly depends on what else the machine is running.
    """
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url]
    if latency:
        command.insert(1, "--latency")
    server_before = cpu_seconds(server) if server else 0.0
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, env={**os.environ, "WRK_BODY": str(body)}
    ).stdout
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(server) - server_before if server else None
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rate or not total:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")

    def percentile(name: str) -> float | None:
        """A latency percentile from --latency's distribution, in ms."""
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        return float(match.group(1)) * UNITS_MS[match.group(2)] if match else None

    def printed(name: str) -> float | None:
        """A figure printed by post.lua's done(), in ms."""
        match = re.search(rf"^{name} latency: ([\d.]+) ms$", out, re.MULTILINE)
        return float(match.group(1)) if match else None

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(non_2xx.group(1)) if non_2xx else 0
    failed += sum(int(value) for value in sockets.groups()) if sockets else 0
    errors = f"non-2xx {non_2xx.group(1) if non_2xx else 0}, " + (sockets.group(0) if sockets else "no socket errors")
    return WrkResult(
        float(rate.group(1)),
        percentile("50"),
        percentile("99"),
        printed("p99.9"),
        printed("max"),
        int(total.group(1)),
        failed,
        errors,
        server_cpu,
        client_cpu,
    )


# ---------------------------------------------------------------------------------------------------------------
# The targets and the measurements
# ---------------------------------------------------------------------------------------------------------------
def make_targets(lab: Lab, tune: bool) -> dict[str, Target]:
    """Every server of the comparison (or, with ``tune``, the shipped service under several gunicorn settings)."""
    bodies, env = lab.bodies, server_env({"XDG_RUNTIME_DIR": str(lab.work / "run")})
    (lab.work / "run").mkdir(exist_ok=True)
    named = (bodies / "one.json", bodies / "batch.json")
    targets: dict[str, Target] = {}

    def serve(name: str, label: str, script: Path, project: Path, extra: dict[str, str]) -> None:
        """A baked project's service exactly as its `<slug> serve` starts it, with ``extra`` in its environment."""
        command = [script, "serve", "--port", "{port}"]
        targets[name] = Target(name, label, command, "/predict", *named, cwd=project, env=server_env({**env, **extra}))

    def shipped(name: str, label: str, model: str, gunicorn_args: str = "") -> None:
        """The default bake's service, serving one of the lab's registries."""
        extra = {"MODEL_REGISTRY": str(lab.registries[model]), "GUNICORN_CMD_ARGS": gunicorn_args}
        if model == "hgb":
            extra["PYTHONPATH"] = str(hgb_src(lab.project))
        serve(name, label, lab.script, lab.project, extra)

    def bare(name: str, label: str, model: str) -> None:
        """The bare Flask app under gunicorn with 2 sync workers and gunicorn's defaults otherwise."""
        command = [
            lab.python,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            "127.0.0.1:{port}",
            "--pythonpath",
            BENCH,
            f"{Path(__file__).stem}:bare_flask_app()",
        ]
        targets[name] = Target(
            name, label, command, "/predict", *named, env={**env, "BENCH_MODEL": str(production_folder(lab, model))}
        )

    if tune:
        for args in TUNE_CONFIGS:
            for model in ("lr", "hgb"):
                shipped(f"{model} {args or 'shipped'}", f"shipped, {model}, {args or 'as shipped'}", model, args)
        return targets
    shipped("shipped-lr", "generated service as shipped (`serve`)", "lr")
    bare("bare-flask-lr", "bare Flask + gunicorn, 2 sync workers", "lr")
    if lab.layer and lab.layer_script:
        log = lab.work / "layer" / "prediction-log"
        for name, label, extra in (
            ("layer-lr", "with the production loop's layer, log off (metrics, request ids)", {"PREDICTION_LOG": "off"}),
            ("layer-lr-log", "the layer, prediction log on", {"PREDICTION_LOG": str(log)}),
            (
                "layer-lr-shadow",
                "the layer, prediction log and shadow on (MODEL_SHADOW=staging)",
                {"PREDICTION_LOG": str(log), "MODEL_SHADOW": "staging"},
            ),
        ):
            serve(name, label, lab.layer_script, lab.layer, {"MODEL_REGISTRY": str(lab.layer / "registry"), **extra})
    if lab.ml_python:
        ml_bin = lab.ml_python.parent
        ml_env = {**env, "PATH": f"{ml_bin}:{env.get('PATH', '')}", "MLFLOW_TRACKING_URI": lab.mlflow_tracking}
        mlflow = [
            ml_bin / "mlflow",
            "models",
            "serve",
            "-m",
            lab.mlflow_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ]
        ml_bodies = (bodies / "mlflow-one.json", bodies / "mlflow-batch.json")
        # mlflow depends on plain uvicorn (h11, asyncio loop) and starts 1 worker: that is "as it ships"
        targets["mlflow-shipped"] = Target(
            "mlflow-shipped",
            "MLflow scoring server as it ships (1 worker, h11)",
            mlflow,
            "/invocations",
            *ml_bodies,
            env={**ml_env, "UVICORN_HTTP": "h11", "UVICORN_LOOP": "asyncio"},
        )
        targets["mlflow-best"] = Target(
            "mlflow-best",
            "MLflow scoring server, 2 workers, uvicorn[standard]",
            [*mlflow, "--workers", "2"],
            "/invocations",
            *ml_bodies,
            env=ml_env,
        )
        fastapi = [
            lab.ml_python,
            "-m",
            "uvicorn",
            "--factory",
            f"{Path(__file__).stem}:fastapi_app",
            "--app-dir",
            BENCH,
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ]
        targets["fastapi-lr"] = Target(
            "fastapi-lr",
            "bare FastAPI + uvicorn[standard], 2 workers",
            fastapi,
            "/predict",
            *named,
            env={**env, "BENCH_MODEL": str(production_folder(lab, "lr"))},
        )
    shipped("shipped-hgb", "generated service as shipped, HistGradientBoosting", "hgb")
    bare("bare-flask-hgb", "bare Flask + gunicorn 2 sync workers, HistGradientBoosting", "hgb")
    return targets


# gunicorn settings tried by --tune, passed through GUNICORN_CMD_ARGS (which overrides the config file)
TUNE_CONFIGS = (
    "",  # as shipped: 2 sync workers
    "--workers 3",
    "--worker-class gthread --threads 1",
    "--worker-class gthread --threads 2",
    "--worker-class gthread --threads 2 --reuse-port",
    "--worker-class gthread --threads 4",
    "--worker-class gthread --workers 1 --threads 4",
)


def log_rows_dropped(url: str) -> float | None:
    """The rows the production layer's prediction log dropped so far (its /metrics), or None without the layer."""
    try:
        with urllib.request.urlopen(url.replace("/predict", "/metrics"), timeout=10) as response:
            text = response.read().decode()
    except (OSError, ValueError):
        return None
    return sum(float(line.split()[-1]) for line in text.splitlines() if "_prediction_log_dropped_total{" in line)


def measure(target: Target, work: Path, seconds: int) -> dict:
    """Start a target, measure every figure once, stop it."""
    with Server(target, work) as server:
        cold = server.start()
        wrk(server.url, target.one, 16, 1)  # warm-up: every worker has loaded the model and answered
        pid = server.process.pid
        c16 = wrk(server.url, target.one, 16, seconds, server=pid)
        c1 = wrk(server.url, target.one, 1, seconds, latency=True)
        batch = wrk(server.url, target.batch, 16, seconds, server=pid)
        rss = peak_rss_mb(pid)
        dropped = log_rows_dropped(server.url) if target.name.startswith("layer") else None
    return {
        "log_rows_dropped": dropped,
        "rps_c16": c16.requests_per_s,
        "server_cpu_us_per_request": c16.server_cpu_s / c16.requests * 1e6 if c16.requests else None,
        "wrk_cpu_us_per_request": c16.client_cpu_s / c16.requests * 1e6 if c16.requests else None,
        "server_cpu_us_per_row_batch": batch.server_cpu_s / (batch.requests * BATCH) * 1e6 if batch.requests else None,
        "p50_ms_c1": c1.p50_ms,
        "p99_ms_c1": c1.p99_ms,
        "rps_c1": c1.requests_per_s,
        "p999_ms_c1": c1.p999_ms,
        "max_ms_c1": c1.max_ms,
        "rows_per_s_batch": batch.requests_per_s * BATCH,
        "peak_rss_mb": rss,
        "cold_start_s": cold,
        "failed": c16.failed + c1.failed + batch.failed,
        "errors": [run.errors for run in (c16, c1, batch) if run.failed],
        "requests": c16.requests + c1.requests + batch.requests,
    }


# where a worker's time goes: the first rule whose text appears in a sampled stack names the sample
PROFILE_RULES = (
    ("model: input type checks (narwhals)", ("probability", "narwhals")),
    ("model: input validation (check_array, feature names)", ("probability", "validation.py")),
    ("model: fitted and tags checks", ("probability", "_tags.py")),
    ("model: the rest of predict_proba (the arithmetic)", ("probability",)),
    ("service: pydantic validation", ("validate_json",)),
    ("service: rows to matrix", ("matrix (",)),
    ("service: JSON response (jsonify)", ("jsonify",)),
    ("production layer: metrics (prometheus-client)", ("prometheus_client",)),
    ("production layer: request ids, the log's hand-off", ("production/",)),
    ("service: the rest of the view (model slot, headers)", ("predict (",)),
    ("Flask and Werkzeug (routing, request and response objects)", ("flask/", "werkzeug/")),
    ("gunicorn (HTTP parsing, sockets, threads)", ("gunicorn/",)),
    ("gevent (the event loop, monkey-patched sockets)", ("gevent/",)),
)


def profile(lab: Lab, seconds: int, name: str = "shipped-lr") -> str:
    """Sample a service's workers (the thread holding the GIL) with py-spy under wrk -c16, by area.

    One profile for 1-row requests and one for 100-row batches.
    """
    spy = lab.python.parent / "py-spy"
    if not spy.exists():
        run([*uv(), "pip", "install", "-q", "--python", lab.python, "py-spy"])
    target = make_targets(lab, tune=False)[name]
    tables = []
    for label, body in (("1-row requests", target.one), ("100-row batches", target.batch)):
        stacks = lab.work / f"profile-{body.stem}.txt"
        with Server(target, lab.work) as server:
            server.start()
            wrk(server.url, body, 16, 1)
            load = subprocess.Popen(
                ["wrk", "-t2", "-c16", f"-d{seconds + 4}s", "-s", str(LUA), server.url],
                env={**os.environ, "WRK_BODY": str(body)},
                stdout=subprocess.DEVNULL,
            )
            try:
                time.sleep(1)
                command = [spy, "record", "--pid", server.process.pid, "--subprocesses", "--gil", "--format", "raw"]
                run([*command, "--rate", "200", "--duration", seconds, "--nonblocking", "--output", stacks])
            finally:
                load.wait(timeout=seconds + 30)
        counts: dict[str, int] = {}
        for line in stacks.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            area = next((area for area, texts in PROFILE_RULES if all(text in stack for text in texts)), "other")
            counts[area] = counts.get(area, 0) + int(samples)
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        rows = [f"| {area} | {count / total:.1%} |" for area, count in ranked]
        tables += [f"{name}, {label}: py-spy, {total:,} samples of the workers' CPU", "", "| where | share |"]
        tables += ["|---|--:|"]
        tables += [*rows, ""]
    return "\n".join(tables)


def check_thread_pools(lab: Lab) -> dict[str, list]:
    """OpenMP/BLAS threads one gunicorn worker gets, with the shipped gunicorn.conf.py and with gunicorn's defaults."""
    base = [lab.python, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:{port}", "--pythonpath", BENCH]
    report = {}
    for name, config in (
        ("shipped gunicorn.conf.py", ["--config", str(lab.project / "gunicorn.conf.py")]),
        ("gunicorn defaults", []),
    ):
        target = Target(
            "threads",
            name,
            [*base, *config, f"{Path(__file__).stem}:threadpool_app()"],
            "/",
            lab.bodies / "one.json",
            lab.bodies / "one.json",
            env=server_env({"XDG_RUNTIME_DIR": str(lab.work / "run")}),
        )
        with Server(target, lab.work) as server:
            server.start()
            with urllib.request.urlopen(server.url, timeout=5) as response:
                pools = json.loads(response.read())
        report[name] = [(pool["internal_api"], pool["num_threads"]) for pool in pools]
    return report


def in_process_times(lab: Lab, seconds: float) -> dict[str, dict[int, float]]:
    """Seconds per predict_proba call on 1 and 100 rows, for each model, in a fresh process."""
    times = {}
    for model in lab.registries:
        out = run(
            [lab.python, __file__, "_in_process", production_folder(lab, model), lab.bodies, seconds], env=server_env()
        )
        times[model] = {int(rows): value for rows, value in json.loads(out).items()}
    return times


def median(values: list) -> float | None:
    """Median of the values that are not None."""
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    """A number with thousands separators, or a dash."""
    return "-" if value is None else f"{value:,.{digits}f}"


def table(targets: dict[str, Target], results: dict[str, list[dict]], inproc: dict | None) -> str:
    """The Markdown table of medians."""
    lines = [
        "| server | 1-row req/s, 16 conn | server CPU µs/req | p50 ms, 1 conn | p99 ms, 1 conn "
        "| 100-row rows/s, 16 conn | server CPU µs/row | peak RSS MB | cold start s | failed / requests |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for model, times in (inproc or {}).items():
        lines.append(
            f"| in-process predict_proba, {model} (1 thread) | {fmt(1 / times[1])} calls/s | {fmt(times[1] * 1e6)} "
            f"| {fmt(times[1] * 1000, 3)} | - | {fmt(BATCH / times[BATCH])} | {fmt(times[BATCH] / BATCH * 1e6, 1)} "
            "| - | - | - |"
        )
    for name, runs in results.items():
        if not runs:
            continue
        m = {key: median([run[key] for run in runs]) for key in runs[0] if key not in ("errors", "log_rows_dropped")}
        failed, requests = sum(run["failed"] for run in runs), sum(run["requests"] for run in runs)
        lines.append(
            f"| {targets[name].label} | {fmt(m['rps_c16'])} | {fmt(m['server_cpu_us_per_request'])} "
            f"| {fmt(m['p50_ms_c1'], 2)} | {fmt(m['p99_ms_c1'], 2)} | {fmt(m['rows_per_s_batch'])} "
            f"| {fmt(m['server_cpu_us_per_row_batch'], 1)} | {fmt(m['peak_rss_mb'])} | {fmt(m['cold_start_s'], 2)} "
            f"| {failed:,} / {requests:,} |"
        )
    return "\n".join(lines)


def ratios(results: dict[str, list[dict]], inproc: dict | None) -> str:
    """The issue's targets as ratios of medians measured in this run."""

    def m(name: str, key: str) -> float | None:
        """Median of one figure of one target."""
        return median([run[key] for run in results.get(name, [])])

    lines = []
    shipped, bare, best = m("shipped-lr", "rps_c16"), m("bare-flask-lr", "rps_c16"), m("mlflow-best", "rps_c16")
    fastapi = m("fastapi-lr", "rps_c16")
    if shipped and bare:
        lines.append(f"- shipped / bare Flask, 1-row req/s at 16 connections: {shipped / bare:.2f} (target >= 1)")
    if shipped and best:
        lines.append(f"- shipped / MLflow best: {shipped / best:.2f} (target >= 1.5)")
    if shipped and fastapi:
        lines.append(f"- shipped / bare FastAPI + uvicorn[standard]: {shipped / fastapi:.2f} (stretch >= 1)")
    if m("shipped-lr", "p99_ms_c1") is not None:
        lines.append(f"- shipped p99 at 1 connection: {m('shipped-lr', 'p99_ms_c1'):.2f} ms (target < 2 ms)")
    for name in ("shipped-lr", "mlflow-shipped", "mlflow-best"):
        if m(name, "max_ms_c1") is not None:
            lines.append(
                f"- {name} at 1 connection: p99.9 {m(name, 'p999_ms_c1'):.1f} ms, max {m(name, 'max_ms_c1'):.1f} ms "
                "(a Nagle / delayed-ACK stall shows as about 40 ms or more)"
            )
    batch = m("shipped-lr", "rows_per_s_batch")
    if batch and inproc:
        limit = BATCH / inproc["lr"][BATCH]
        lines.append(f"- shipped 100-row rows/s / in-process 100-row rows/s: {batch / limit:.2f} (target >= 0.5)")
    for key, what, target in (
        ("rows_per_s_batch", "100-row rows/s at 16 connections", ">= 1"),
        ("p99_ms_c1", "p99 at 1 connection", "<= 1.2"),
        ("p999_ms_c1", "p99.9 at 1 connection", "<= 1.2"),
        ("peak_rss_mb", "peak RSS", "<= 1.3"),
    ):
        if m("shipped-lr", key) and m("bare-flask-lr", key):
            lines.append(
                f"- shipped / bare Flask, {what}: {m('shipped-lr', key) / m('bare-flask-lr', key):.2f} ({target})"
            )
    costs = (("server_cpu_us_per_request", "CPU per 1-row request"), ("server_cpu_us_per_row_batch", "CPU per row"))
    for name, without in (("layer-lr-log", "layer-lr"), ("layer-lr-shadow", "layer-lr-log")):
        for key, what in costs:
            if m(name, key) and m(without, key):
                cost = m(name, key) / m(without, key) - 1
                lines.append(f"- {name} against {without}, {what}: {cost:+.0%} (target <= +10%)")
    for name in ("layer-lr-log", "layer-lr-shadow"):
        if results.get(name):
            dropped = sum(run["log_rows_dropped"] or 0 for run in results[name])
            lines.append(f"- {name}: prediction log rows dropped in all its runs: {dropped:,.0f} (target 0)")
    for key, what in (("rps_c16", "1-row req/s"), ("rows_per_s_batch", "100-row rows/s"), ("peak_rss_mb", "peak RSS")):
        if m("layer-lr", key) and m("shipped-lr", key):
            lines.append(
                f"- the layer against the hello world, {what}: {m('layer-lr', key) / m('shipped-lr', key):.2f}"
            )
    cpu = {name: m(name, "server_cpu_us_per_request") for name in ("shipped-lr", "bare-flask-lr", "mlflow-best")}
    if cpu["shipped-lr"] and cpu["bare-flask-lr"]:
        others = ", ".join(f"{name} {value:,.0f} µs" for name, value in cpu.items() if value and name != "shipped-lr")
        lines.append(
            f"- server CPU per 1-row request (load-independent): shipped {cpu['shipped-lr']:,.0f} µs; {others}"
        )
    hgb_shipped, hgb_bare = m("shipped-hgb", "rps_c16"), m("bare-flask-hgb", "rps_c16")
    if hgb_shipped and hgb_bare:
        lines.append(f"- HistGradientBoosting, shipped / bare Flask at 16 connections: {hgb_shipped / hgb_bare:.1f}")
    return "\n".join(lines)


def machine_note() -> str:
    """CPU count, model name and load average while the benchmark ran."""
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"{os.cpu_count()} CPUs ({model.group(1) if model else 'unknown'}), load average at the end "
        f"{' '.join(load)}; wrk and the servers share the same cores"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-serving"), help="bake, venvs and logs")
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the table shows medians (default 3)")
    parser.add_argument("--targets", help="comma-separated subset of the servers (default: all)")
    parser.add_argument("--tune", action="store_true", help="compare gunicorn settings for the shipped service")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow and FastAPI (no second venv)")
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    parser.add_argument("--profile", action="store_true", help="only profile the shipped service with py-spy")
    parser.add_argument("--memory", action="store_true", help="only the memory of each process of each server")
    return parser.parse_args(argv)


HELPERS = {
    "_train_hgb": lambda project, registry: train_hgb(Path(project), Path(registry)),
    "_bodies": lambda project, out: write_bodies(Path(project), Path(out)),
    "_mlflow_model": lambda folder, store, bodies: log_mlflow_model(Path(folder), Path(store), Path(bodies)),
    "_in_process": lambda folder, bodies, seconds: in_process(Path(folder), Path(bodies), float(seconds)),
}


def main(argv: list[str] | None = None) -> int:
    """Set up once, then measure every target in turn, ``--repeat`` times, and print the Markdown results."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in HELPERS:
        HELPERS[argv[0]](*argv[1:])
        return 0
    args = parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("ERROR: wrk is not installed: apt-get install -y wrk")
    quick = args.tune or args.profile or args.memory
    lab = prepare_lab(args.work.resolve(), with_mlflow=not (args.no_mlflow or quick), with_layer=True)
    if args.memory:
        print(memory(lab))
        return 0
    if args.profile:
        for name in (args.targets or "shipped-lr").split(","):
            print(profile(lab, max(args.duration, 10), name))
        return 0
    targets = make_targets(lab, args.tune)
    if args.targets:
        targets = {name: targets[name] for name in args.targets.split(",")}
    inproc = None if args.tune else in_process_times(lab, seconds=1.0)
    results: dict[str, list[dict]] = {name: [] for name in targets}
    for repetition in range(1, args.repeat + 1):
        for name, target in targets.items():
            say(f"repetition {repetition}/{args.repeat}: {name}")
            results[name].append(measure(target, lab.work, args.duration))
            say(f"  {json.dumps(results[name][-1])}")
    print(f"wrk {args.duration} s per run, {args.repeat} repetitions, medians; {machine_note()}\n")
    print(table(targets, results, inproc))
    print()
    print(ratios(results, inproc))
    if not args.tune:
        print("\nnative thread pools in one gunicorn worker:", json.dumps(check_thread_pools(lab)))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "in_process": inproc}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
