"""The security page and the estimator guide match the code: each test they cite exists, each class list fits."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from adoption import ONE_THREAD
from conftest import ROOT, clean_env, run

DOCS = ROOT / "docs"
# the bake's tests are rendered from these; the template's own tests sit in tests/
GENERATED = ROOT / "{{cookiecutter.project_slug}}"
TEST_SOURCES = [*(ROOT / "tests").rglob("test_*.py"), *(GENERATED / "tests").rglob("test_*.py")]
SYNC = ["sync", "--quiet", "--locked", "--extra", "test", "--extra", "lint", "--compile-bytecode"]


def defined_tests() -> set[str]:
    """Every test function name the template and the generated project define."""
    return {name for path in TEST_SOURCES for name in re.findall(r"^def (test_\w+)\(", path.read_text(), flags=re.M)}


def test_every_test_the_security_page_cites_exists():
    cited = set(re.findall(r"`(test_\w+)`", (DOCS / "security.md").read_text()))
    assert len(cited) > 15
    assert cited - defined_tests() == set()


def test_every_test_the_estimator_guide_cites_exists():
    cited = set(re.findall(r"`(test_\w+)`", (DOCS / "how-to" / "estimator.md").read_text()))
    assert cited and cited - defined_tests() == set()


ESTIMATOR_GUIDE = DOCS / "how-to" / "estimator.md"
MLP = 'Pipeline([("scale", StandardScaler()), ("classify", MLPClassifier(random_state=seed))])'


@pytest.mark.slow
@pytest.mark.adoption
def test_the_estimator_guides_trees_pass_the_suite_unchanged_and_its_neural_network_loads_with_no_edit(
    cookies_session, tmp_path
):
    guide = ESTIMATOR_GUIDE.read_text()
    block = re.search(r"For example,\ngradient-boosted trees.*?```python\n(.*?)```", guide, flags=re.S).group(1)
    assert MLP.replace("\\", "") in guide.replace("\n", " ")
    project = Path(cookies_session.bake(extra_context={"project_slug": "trees"}).project_path)
    assert (
        run([shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv", *SYNC], project, 1_800).returncode == 0
    )
    (train,) = project.glob("src/*/train.py")
    text = train.read_text()
    start, end = text.index("def build_model("), text.index("\ndef fit(")
    imports, _, function = block.partition("\n\n\n")
    text = text[:start] + function.strip() + "\n\n" + text[end:]  # the imports beside the others: ruff sorts them
    train.write_text(text.replace("from sklearn.pipeline import", f"{imports.strip()}\nfrom sklearn.pipeline import"))
    env = {"PATH": os.pathsep.join([str(project / ".venv" / "bin"), clean_env()["PATH"]]), **ONE_THREAD}
    # the guide's next step: ruff removes the imports the old model needed, and lint then passes
    for command in (["ruff", "check", "--fix", "--quiet", "src"], ["ruff", "format", "src"]):
        assert run(command, project, **env).returncode == 0
    for command in (["ruff", "check", "src", "tests"], ["ruff", "format", "--check", "src", "tests"]):
        done = run(command, project, **env)
        assert done.returncode == 0, done.stdout[-3_000:]
    done = run(["pytest", "-p", "no:cacheprovider", "-q", "-n", "2"], project, 1_800, **env)
    assert done.returncode == 0, done.stdout[-5_000:]
    package = train.parent.name
    code = f"""
import json, pathlib, tempfile
import numpy as np, skops.io
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from {package} import artifact, train
from {package}.features import FEATURES
train.build_model = lambda seed=0: {MLP}
X = np.random.default_rng(0).random((400, len(FEATURES))); y = (X[:, 0] > 0.5).astype(int)
path = pathlib.Path(tempfile.mkdtemp()) / "model.skops"
skops.io.dump(train.build_model().set_params(classify__max_iter=50).fit(X, y), path)
print(json.dumps(artifact.untrusted(path)))
"""
    done = run(["python", "-W", "ignore", "-c", code], project, **env)
    assert done.returncode == 0 and json.loads(done.stdout) == [], done.stdout + done.stderr
