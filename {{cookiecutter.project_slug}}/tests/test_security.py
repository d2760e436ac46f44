"""Attacks on a running service through its registry: a served model is always a verified folder of models/."""

import json
import shutil

import pytest

from {{ cookiecutter.package_name }}.artifact import ArtifactError
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.service import create_app

from tampering import edit_metadata, plant_exploit


def predict(client, row):
    """POST one row to /predict."""
    return client.post("/predict", data=json.dumps(row), content_type="application/json")


def point(registry, stage, text):
    """Write a stage pointer directly, as someone with write access to the registry folder can."""
    (registry.stages / stage).write_text(text + "\n")


def refusals(caplog, name):
    """The service's log lines refusing a model named ``name``."""
    return [r.getMessage() for r in caplog.records if "refusing" in r.getMessage() and name in r.getMessage()]


def test_a_model_file_that_runs_a_command_is_never_registered_served_or_run(
    client, registry, model_dir, valid_row, tmp_path, caplog
):
    assert predict(client, valid_row).get_json()["model_version"] == model_dir.name
    canary = tmp_path / "pwned"
    planted = shutil.copytree(model_dir, tmp_path / "planted" / model_dir.name)
    plant_exploit(planted, canary, width=len(FEATURES))
    edit_metadata(planted, version="20300101-000000-deadbeef")
    with pytest.raises(ArtifactError, match="does not trust"):
        registry.register(planted)
    # written into the registry by hand, bypassing register and promote
    shutil.copytree(planted, registry.models / "20300101-000000-deadbeef")
    point(registry, "production", "20300101-000000-deadbeef")
    assert client.get("/ready").get_json()["model_version"] == model_dir.name
    response = predict(client, valid_row)
    assert (response.status_code, response.get_json()["model_version"]) == (200, model_dir.name)
    assert not canary.exists()
    assert refusals(caplog, "20300101-000000-deadbeef")


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_pointer_to_a_model_outside_models_is_never_served_later_or_at_start(
    client, registry, model_dir, second_model_dir, where
):
    outside = shutil.copytree(second_model_dir, registry.root.parent / "outside")
    assert client.get("/ready").get_json()["model_version"] == model_dir.name
    point(registry, "production", "../../outside" if where == "relative" else str(outside))
    for path in ("/ready", "/version"):
        assert client.get(path).get_json()["model_version"] == model_dir.name
    started = create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0}).test_client()
    assert started.get("/ready").status_code == 503


def test_a_resealed_model_the_service_cannot_build_a_schema_for_leaves_the_current_one_serving(
    client, registry, model_dir, valid_row, caplog
):
    assert predict(client, valid_row).status_code == 200
    broken = registry.models / "20300101-000000-0badf00d"
    shutil.copytree(registry.folder(model_dir.name), broken)
    features = json.loads((broken / "metadata.json").read_text())["features"]
    # a valid feature list for the registry, but a name (a lone surrogate, which JSON can escape) that pydantic
    # cannot build a validator for
    edit_metadata(broken, version=broken.name, features=[{**features[0], "name": "\udc80"}, *features[1:]])
    point(registry, "production", broken.name)
    for path in ("/ready", "/version", "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200, path
    response = predict(client, valid_row)
    assert (response.status_code, response.get_json()["model_version"]) == (200, model_dir.name)
    assert refusals(caplog, broken.name)
