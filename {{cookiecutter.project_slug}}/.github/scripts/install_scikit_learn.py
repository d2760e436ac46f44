"""Install the scikit-learn version that saved a registered model: a model loads only with its own minor version.

    python .github/scripts/install_scikit_learn.py [production | previous | VERSION | FOLDER]

Only rollback.yml needs it now: every other job installs uv.lock's libraries, which trained the models it handles,
but a rollback may restore a model saved before uv.lock moved scikit-learn to another minor version, and the
registry verifies a model's library before it moves a stage pointer to it. The job then swaps that one library
(with uv, into the locked .venv) and re-tags the restored version's image, which carries that model's own lock.
`production` (the default) is the model the production pointer of the project's registry names (nothing to do
before the first deploy); `previous` is the version a rollback restores; VERSION a registered version; FOLDER a
model folder.
"""

import json
import subprocess
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.commands import resolve
from {{ cookiecutter.package_name }}.config import Settings, load_settings
from {{ cookiecutter.package_name }}.registry import Registry, RegistryError


def model_folder(which: str, settings: Settings) -> Path | None:
    """The folder of the model named by ``which``; None when production is asked for and there is none yet."""
    registry = Registry(settings.registry)
    if which == "production":
        current = registry.current("production")
        return registry.folder(current) if current else None
    return resolve(settings, registry.previous_production() if which == "previous" else which)


def main(which: str) -> int:
    """Install the model's scikit-learn with uv; print what was installed, or one line saying why not."""
    try:
        folder = model_folder(which, load_settings())
        if folder is None:
            print("no production model yet: keeping the scikit-learn it installed")
            return 0
        wanted = json.loads((folder / "metadata.json").read_text())["sklearn_version"]
    except (RegistryError, OSError, ValueError, KeyError) as error:
        print(f"error: cannot tell which scikit-learn saved the model: {error!s}", file=sys.stderr)
        return 1
    command = ["uv", "pip", "install", "--quiet", "--python", sys.executable, f"scikit-learn=={wanted}"]
    installed = subprocess.run(command)
    if installed.returncode:
        print(f"error: uv could not install scikit-learn=={wanted} (exit {installed.returncode})", file=sys.stderr)
        return 1
    print(f"scikit-learn=={wanted}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "production"))
