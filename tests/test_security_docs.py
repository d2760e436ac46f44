"""The security page and the estimator guide match the code: each test they cite exists, each class list fits."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import ROOT

DOCS = ROOT / "docs"
# the bake's tests are rendered from these; the template's own tests sit in tests/
GENERATED = ROOT / "{{cookiecutter.project_slug}}"
TEST_SOURCES = [*(ROOT / "tests").rglob("test_*.py"), *(GENERATED / "tests").rglob("test_*.py")]
MARKER = "<!-- trusted types of the example: tests/test_security_docs.py fits the example and compares -->"


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


@pytest.mark.slow
def test_the_estimator_guide_lists_exactly_the_classes_its_example_needs(checked_project):
    guide = (DOCS / "how-to" / "estimator.md").read_text()
    block = re.search(re.escape(MARKER) + r"\n```python\n(.*?)```", guide, flags=re.S).group(1)
    listed = re.findall(r'^ {4}"([\w.]+)",$', block, flags=re.M)
    (trust,) = (checked_project / "src").glob("*/artifact.py")
    code = f"""
import importlib, io, json, zipfile, tempfile, pathlib
import numpy as np, skops.io
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
trust = importlib.import_module("{trust.parent.name}.artifact")
rng = np.random.default_rng(0)
X = rng.random((200, 6)); y = (X[:, 0] > 0.5).astype(int)
model = Pipeline([("scale", StandardScaler()), ("classify", MLPClassifier(max_iter=20, random_state=0))]).fit(X, y)
path = pathlib.Path(tempfile.mkdtemp()) / "model.skops"
skops.io.dump(model, path)
print(json.dumps(trust.untrusted(path)))
"""
    python = checked_project / ".tox" / "test" / "bin" / "python"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(listed) == json.loads(done.stdout)
