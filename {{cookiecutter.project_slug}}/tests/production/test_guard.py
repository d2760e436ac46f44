"""The guard: after a promotion, live labelled rows decide between rollback, confirmation and waiting."""

import json
import shutil
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.config import ConfigError, load_settings
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.production.feedback import label_record, load, write_jsonl
from {{ cookiecutter.package_name }}.production.guard import act, decide, run_guard
from {{ cookiecutter.package_name }}.registry import Registry, RegistryError
from {{ cookiecutter.package_name }}.service import create_app

ROWS = 4_000


@pytest.fixture
def promoted(registry, second_model_dir):
    """The session registry after a second version replaced the first in production: (new, replaced)."""
    replaced = registry.current("production")
    new = registry.register(second_model_dir)
    registry.promote(new, "production", reason="test promotion")
    return new, replaced


@pytest.fixture(scope="module")
def live(model_dir, draw_holdout):
    """ROWS labelled rows drawn from the holdout (with replacement), the replaced model's and a worse one's scores."""
    data = draw_holdout(ROWS, seed=1)  # enough rows, however small the holdout
    old = artifact.load(model_dir).probability(data.X)
    rng = np.random.default_rng(0)
    worse = np.where(rng.random(len(old)) < 0.5, old, rng.random(len(old)))  # half the rows scored at random
    return data, old, worse


def test_a_worse_promotion_is_rolled_back_and_the_history_carries_the_evidence(registry, promoted, live, write_live,
                                                                               gate_settings):  # fmt: skip
    new, replaced = promoted
    data, old, worse = live
    labelled = load(*write_live(new, data.y, worse, shadow=replaced, shadow_score=old, X=data.X))
    result = act(registry, run_guard(registry, labelled, gate_settings, min_rows=1_000))
    assert (result.decision, result.exit_code, result.acted) == ("rollback", 1, True)
    assert registry.current("production") == replaced
    last = registry.history()[-1]
    assert (last["action"], last["from"], last["to"]) == ("rollback", new, replaced)
    assert last["reason"].startswith(f"guard: on {len(data.y)} live rows") and "upper bound -0." in last["reason"]


@pytest.mark.slow
def test_a_confirmed_promotion_is_watched_for_guard_watch_days_then_left_alone(registry, promoted, live, write_live,
                                                                              gate_settings):  # fmt: skip
    new, replaced = promoted
    data, old, _ = live
    labelled = load(*write_live(new, data.y, old, shadow=replaced, shadow_score=old, X=data.X))
    result = act(registry, run_guard(registry, labelled, gate_settings, min_rows=1_000))
    assert (result.decision, result.exit_code, registry.current("production")) == ("confirm", 0, new)
    last = registry.history()[-1]
    assert (last["action"], last["stage"], last["to"]) == ("confirm", "production", new)
    confirmed = datetime.fromisoformat(last["time"])
    until = (confirmed + timedelta(days=7)).isoformat()
    again = act(registry, run_guard(registry, labelled, gate_settings, 1_000, watch_days=7))
    assert (again.decision, again.exit_code, again.acted, again.confirmed) == ("watch", 0, False, last["time"])
    assert again.reasons[-1] == f"confirmed on {last['time']}; watched until {until} (guard_watch_days = 7)"
    assert registry.history()[-1] == last  # one confirmation, however often the guard looks again
    after = run_guard(registry, labelled, gate_settings, 1_000, watch_days=7, now=confirmed + timedelta(days=7))
    assert (after.decision, after.exit_code) == ("idle", 0)
    assert after.reasons == [f"production {new} was confirmed on {last['time']}, watched to {until}"]


def test_a_confirmation_forged_through_the_feedback_store_does_not_stop_the_guard(registry, promoted, live, write_live,
                                                                                 gate_settings):  # fmt: skip
    new, replaced = promoted
    data, old, worse = live
    # whoever writes the store logs rows production scores perfectly and the replaced version at random, and labels
    forged = np.random.default_rng(5).random(1_000)
    stores = write_live(new, data.y[:1_000], data.y[:1_000], shadow=replaced, shadow_score=forged, X=data.X)
    result = act(registry, run_guard(registry, load(*stores), gate_settings, min_rows=1_000))
    assert (result.decision, registry.history()[-1]["action"]) == ("confirm", "confirm")
    for folder in stores:  # the forgery is found and removed; the honest rows and labels arrive
        shutil.rmtree(folder)
    honest = load(*write_live(new, data.y, worse, shadow=replaced, shadow_score=old, X=data.X))
    result = act(registry, run_guard(registry, honest, gate_settings, min_rows=1_000))
    assert (result.decision, result.acted, registry.current("production")) == ("rollback", True, replaced)


def test_requests_reusing_known_request_ids_cannot_hide_labelled_rows_from_the_guard(
    registry, worse_model_dir, draw_holdout, tmp_path, gate_settings
):
    replaced = registry.current("production")
    new = registry.register(worse_model_dir)
    registry.promote(new, "production", reason="a bad promotion")
    log, feedback = tmp_path / "log", tmp_path / "feedback"
    app = create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0, "PREDICTION_LOG": str(log)} | {
        "MODEL_SHADOW": "previous"
    })  # fmt: skip
    client = app.test_client()
    data, cast = draw_holdout(6_000, seed=2), {"float": float, "int": int, "bool": bool}
    rows = [{f.name: cast[f.kind](v) for f, v in zip(FEATURES, x, strict=True)} for x in data.X]
    labels, arrived = [], datetime(2026, 1, 7, tzinfo=timezone.utc)
    for n, start in enumerate(range(0, len(rows), 500)):  # the docs' predictable ids, as a payment switch sends them
        response = post(client, rows[start : start + 500], f"txn-{n}")
        key = response.headers["X-Request-ID"]  # the id a label names: the one the service answered with
        labels += [label_record(key, i, int(y), arrived) for i, y in enumerate(data.y[start : start + 500])]
    write_jsonl(feedback / "labels.jsonl", labels)
    for n in range(12):  # someone else reuses each known id, with as many rows (which rows does not matter)
        assert post(client, rows[:500], f"txn-{n}").status_code == 200
    app.extensions["predictions"].log.close()
    result = act(registry, run_guard(registry, load(log, feedback), gate_settings, min_rows=5_000))
    assert (result.decision, result.rows, registry.current("production")) == ("rollback", 6_000, replaced)


def post(client, body, request_id):
    """POST /predict with a JSON body and an X-Request-ID."""
    headers = {"X-Request-ID": request_id}
    return client.post("/predict", data=json.dumps(body), content_type="application/json", headers=headers)


def test_the_guard_waits_for_enough_labelled_rows_and_changes_nothing(registry, promoted, live, write_live,
                                                                      gate_settings):  # fmt: skip
    new, replaced = promoted
    data, old, worse = live
    labelled = load(*write_live(new, data.y[:500], worse[:500], shadow=replaced, shadow_score=old[:500], X=data.X))
    result = act(registry, run_guard(registry, labelled, gate_settings, min_rows=1_000))
    assert (result.decision, result.exit_code, registry.current("production")) == ("wait", 3, new)
    assert result.reasons == [f"500 labelled live rows ({int(data.y[:500].sum())} positives) of the 1000 needed"]


@pytest.mark.slow
def test_only_rows_of_production_shadowed_by_the_replaced_version_count(registry, promoted, live, write_live,
                                                                        gate_settings):  # fmt: skip
    new, replaced = promoted
    data, old, worse = live
    before_labels = load(*write_live(replaced, data.y, worse, shadow=new, shadow_score=old, X=data.X))
    result = run_guard(registry, before_labels, gate_settings, min_rows=1_000)
    assert (result.decision, result.rows) == ("wait", 0)
    assert result.reasons[-1] == f"no label has arrived yet for a row {new} scored"
    write_live(new, data.y, worse, X=data.X)  # no shadow
    labelled = load(*write_live(new, data.y, worse, shadow="another-version", shadow_score=old, X=data.X))
    result = run_guard(registry, labelled, gate_settings, min_rows=1_000)
    assert (result.decision, result.rows) == ("wait", 0)
    assert result.reasons[-2:] == [
        f"none of {2 * len(data.y)} labelled rows of {new} has a shadow score of {replaced}",
        "serve with --shadow previous, so that the service scores each row with both",
    ]


def test_a_rollback_decision_can_be_reported_without_being_made(registry, promoted, live, write_live, gate_settings):
    new, replaced = promoted
    data, old, worse = live
    labelled = load(*write_live(new, data.y, worse, shadow=replaced, shadow_score=old, X=data.X))
    result = act(registry, run_guard(registry, labelled, gate_settings, min_rows=1_000), rollback=False)
    assert (result.decision, result.exit_code, result.acted) == ("rollback", 1, False)
    assert registry.current("production") == new


@pytest.mark.slow
def test_nothing_to_guard_after_a_first_deploy_or_a_rollback(registry, promoted, live, write_live, gate_settings):
    new, replaced = promoted
    data, old, worse = live
    labelled = load(*write_live(new, data.y, worse, shadow=replaced, shadow_score=old, X=data.X))
    registry.rollback(reason="by hand")
    result = run_guard(registry, labelled, gate_settings, min_rows=1_000)
    assert (result.decision, result.exit_code) == ("idle", 0)
    assert result.reasons == [f"production {replaced} was restored by a rollback: nothing to guard"]
    first = Registry(registry.root.parent / "first")
    first.promote(first.register(registry.folder(new)), "production")
    assert run_guard(first, labelled, gate_settings, min_rows=1_000).reasons[0].endswith("nothing to guard")


def test_decide_waits_while_the_interval_straddles_the_margin(gate_settings):
    rng = np.random.default_rng(1)
    y = rng.random(2_000) < 0.05
    old = np.clip(0.2 * y + rng.random(2_000), 0, 1)
    slightly_worse = np.where(rng.random(2_000) < 0.97, old, rng.random(2_000))
    decision, comparison, reason = decide(y, slightly_worse, old, gate_settings, 1_000)
    upper = 2 * comparison.difference - comparison.lower_bound
    assert comparison.lower_bound < -gate_settings.max_auc_drop < upper  # the evidence points neither way
    assert decision == "wait" and reason.startswith("not yet sure either way")


def test_guard_watch_days_is_a_setting_from_0_to_3650(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    assert load_settings(pyproject).guard_watch_days == 30
    for value, wanted in ((0, 0), (3650, 3650)):
        pyproject.write_text(f"[tool.{{ cookiecutter.package_name }}]\nguard_watch_days = {value}\n")
        assert load_settings(pyproject).guard_watch_days == wanted
    for value in ("-1", "3651", '"30"', "1.5"):
        pyproject.write_text(f"[tool.{{ cookiecutter.package_name }}]\nguard_watch_days = {value}\n")
        with pytest.raises(ConfigError, match="guard_watch_days must be"):
            load_settings(pyproject)


def test_a_confirmation_without_a_time_in_the_history_is_named(registry, promoted, live, write_live, gate_settings):
    new, replaced = promoted
    entry = {"time": "yesterday", "user": "x", "action": "confirm", "stage": "production", "from": None, "to": new}
    with registry.history_file.open("a") as file:
        file.write(json.dumps({**entry, "reason": "by hand"}) + "\n")
    data, old, _ = live
    labelled = load(*write_live(new, data.y[:10], old[:10], shadow=replaced, shadow_score=old[:10], X=data.X))
    with pytest.raises(RegistryError, match="a confirmation in the registry's history has no ISO time: 'yesterday'"):
        run_guard(registry, labelled, gate_settings, min_rows=1_000)
