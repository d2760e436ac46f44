"""The synthetic example in the production loop: replayed weeks, their labels, live decay, and the guard's rollback.

Specific to the example, like tests/test_synthetic.py: delete it with src/<package>/synthetic.py for your own data.
"""

import pytest

from {{ cookiecutter.package_name }} import artifact, synthetic
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.data import read_csv, write_csv
from {{ cookiecutter.package_name }}.features import FEATURES
from {{ cookiecutter.package_name }}.gate import auc_estimate
from {{ cookiecutter.package_name }}.monitor import Deployed, check, feature_profile
from {{ cookiecutter.package_name }}.production.feedback import iso_week, load, read_labels, read_predictions
from {{ cookiecutter.package_name }}.production.guard import act, run_guard
from {{ cookiecutter.package_name }}.production.simulate import LIVE_SEED_OFFSET, SimulationError, label_time, simulate
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import create_app
from {{ cookiecutter.package_name }}.synthetic import synthetic_transactions
from {{ cookiecutter.package_name }}.train import build_model, train

GUARD_ROWS = 4_000


@pytest.mark.slow
def test_on_the_default_data_monitor_flags_the_decay_before_auc_falls_3_points(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")  # the default sizes, seed and thresholds
    files = synthetic.write_week(settings.data_dir, 0, settings.seed, settings.train_rows, settings.holdout_rows)
    train_data, holdout = (read_csv(path) for path in files)
    # the default estimator fitted directly, as fit() does: this checks the monitor's rule, not the training code
    model = build_model(settings.seed).fit(train_data.X, train_data.y)
    promised = auc_estimate(holdout.y, model.predict_proba(holdout.X)[:, 1])
    profile = {f.name: feature_profile(column) for f, column in zip(FEATURES, train_data.X.T, strict=True)}
    deployed = Deployed("default", promised.auc, promised.std_error, profile)
    checks = []
    for week in range(1, 7):  # what `simulate --week N` sends, then labels in ISO week N
        live = synthetic_transactions(20_000, week, settings.seed + LIVE_SEED_OFFSET)
        period = iso_week(label_time(week))
        checks.append(check(deployed, period, live.y, model.predict_proba(live.X)[:, 1], live.X, settings))
    flagged = [week for week, c in enumerate(checks, start=1) if any("significantly below" in a for a in c.alerts)]
    auc = {week: c.estimate.auc for week, c in enumerate(checks, start=1)}
    assert flagged == list(range(flagged[0], 7)), flagged  # once decayed, flagged every week
    assert all(auc[week] > deployed.auc - 0.03 for week in range(1, flagged[0] + 1)), (deployed.auc, auc)
    assert min(auc.values()) < deployed.auc - 0.05  # the decay does go on: measured 0.82 against 0.89


def quiet(line: str) -> None:
    """Discard the simulator's progress lines."""


@pytest.mark.parametrize("week", [0, 1, 6, 52])
def test_week_n_labels_arrive_in_iso_week_n_of_the_simulated_year(week):
    assert iso_week(label_time(week)) == ("2025-W52" if week == 0 else f"2026-W{week:02d}")


def test_a_replayed_week_gets_one_label_per_scored_row_of_the_service_log(registry, serve, tmp_path):
    app = create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0, "PREDICTION_LOG": str(tmp_path / "log")})
    url = serve(app)
    path = simulate(url, 3, 300, 0, tmp_path / "feedback", batch=120, say=quiet)
    labels = read_labels(path)
    expected = synthetic_transactions(300, 3, LIVE_SEED_OFFSET)
    assert [label.label for label in labels] == expected.y.tolist()
    assert [label.index for label in labels] == [*range(120), *range(120), *range(60)]
    assert len({label.request_id for label in labels}) == 3
    assert {iso_week(label.time) for label in labels} == {"2026-W03"}
    assert not (tmp_path / "predictions").exists()  # the service keeps the prediction log, unless asked
    app.extensions["predictions"].log.close()
    labelled = load(tmp_path / "log", tmp_path / "feedback")  # labelled by the ids the service answered with
    assert (len(labelled), labelled.unlabelled, labelled.orphans) == (300, 0, 0)


def test_the_prediction_log_it_can_write_carries_the_replaced_version_as_shadow(registry, second_model_dir, serve,
                                                                                tmp_path):  # fmt: skip
    replaced = registry.current("production")
    registry.promote(registry.register(second_model_dir), "production")
    url = serve(create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0}))
    simulate(url, 1, 200, 0, tmp_path / "feedback", predictions=tmp_path / "predictions", registry=registry, say=quiet)
    predictions = read_predictions(tmp_path / "predictions")
    data = synthetic_transactions(200, 1, LIVE_SEED_OFFSET)
    shadow = artifact.load(registry.folder(replaced)).probability(data.X).round(6)
    assert {p.model_version for p in predictions} == {second_model_dir.name}
    assert {p.shadow_version for p in predictions} == {replaced}
    assert [p.shadow_score for p in predictions] == shadow.tolist()


def test_a_refused_request_stops_the_replay_before_any_label_is_written(tmp_path, serve):
    url = serve(create_app({"REGISTRY": str(Registry(tmp_path / "empty").root)}))  # no model: 503
    with pytest.raises(SimulationError, match=r"answered request sim-\w+-00000 with 503"):
        simulate(url, 1, 200, 0, tmp_path / "feedback", say=quiet)
    assert not (tmp_path / "feedback").exists()


@pytest.mark.slow
def test_a_skew_bug_is_rolled_back_on_the_first_labelled_batch_and_history_says_why(tmp_path, serve, gate_settings):
    # the training export counts a card's transactions over 7 days; the service receives the last 24 hours
    week, tx = 4, [f.name for f in FEATURES].index("transactions_last_24h")
    clean, export = tmp_path / "clean", tmp_path / "export"
    for name, seed in (("train", 0), ("holdout", 10_000)):
        write_csv(clean / f"{name}.csv", synthetic_transactions(GUARD_ROWS, week, seed))
        data = read_csv(clean / f"{name}.csv")
        data.X[:, tx] *= 7
        write_csv(export / f"{name}.csv", data)
    good, _ = train(clean / "train.csv", clean / "holdout.csv", tmp_path / "artifacts")
    skewed, _ = train(export / "train.csv", export / "holdout.csv", tmp_path / "artifacts")

    registry = Registry(tmp_path / "registry")
    registry.promote(registry.register(good), "production", reason="first deploy")
    registry.promote(registry.register(skewed), "production", reason="passed the gate")
    url = serve(create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0}))
    stores = tmp_path / "predictions", tmp_path / "feedback"
    simulate(url, week, GUARD_ROWS, 0, stores[1], predictions=stores[0], registry=registry, say=lambda line: None)

    result = act(registry, run_guard(registry, load(*stores), gate_settings, min_rows=1_000))
    assert result.decision == "rollback" and registry.current("production") == good.name
    last = registry.history()[-1]
    assert (last["action"], last["from"], last["to"]) == ("rollback", skewed.name, good.name)
    assert last["reason"].startswith(f"guard: on {GUARD_ROWS} live rows")
    assert f"for {good.name}: difference -0." in last["reason"] and "upper bound -0." in last["reason"]
