"""The simulator: a week of synthetic traffic sent to a running service, then its labels, dated in that week."""

import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.data import synthetic_transactions
from {{ cookiecutter.package_name }}.feedback import iso_week, read_labels, read_predictions
from {{ cookiecutter.package_name }}.registry import Registry
from {{ cookiecutter.package_name }}.service import create_app
from {{ cookiecutter.package_name }}.simulate import LIVE_SEED_OFFSET, SimulationError, label_time, simulate


def quiet(line: str) -> None:
    """Discard the simulator's progress lines."""


@pytest.mark.parametrize("week", [0, 1, 6, 52])
def test_week_n_labels_arrive_in_iso_week_n_of_the_simulated_year(week):
    assert iso_week(label_time(week)) == ("2025-W52" if week == 0 else f"2026-W{week:02d}")


def test_a_replayed_week_gets_one_label_per_scored_row(registry, serve, tmp_path):
    url = serve(create_app({"REGISTRY": str(registry.root), "RELOAD_INTERVAL": 0}))
    path = simulate(url, 3, 300, 0, tmp_path / "feedback", batch=120, say=quiet)
    labels = read_labels(path)
    expected = synthetic_transactions(300, 3, LIVE_SEED_OFFSET)
    assert [label.label for label in labels] == expected.y.tolist()
    assert [label.index for label in labels] == [*range(120), *range(120), *range(60)]
    assert len({label.request_id for label in labels}) == 3
    assert {iso_week(label.time) for label in labels} == {"2026-W03"}
    assert not (tmp_path / "predictions").exists()  # the service keeps the prediction log, unless asked


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
