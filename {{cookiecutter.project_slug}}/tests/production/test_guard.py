"""The guard: after a promotion, live labelled rows decide between rollback, confirmation and waiting."""

import numpy as np
import pytest

from {{ cookiecutter.package_name }} import artifact
from {{ cookiecutter.package_name }}.production.feedback import load
from {{ cookiecutter.package_name }}.production.guard import act, decide, run_guard
from {{ cookiecutter.package_name }}.registry import Registry

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
def test_a_promotion_not_worse_is_confirmed_once(registry, promoted, live, write_live, gate_settings):
    new, replaced = promoted
    data, old, _ = live
    labelled = load(*write_live(new, data.y, old, shadow=replaced, shadow_score=old, X=data.X))
    result = act(registry, run_guard(registry, labelled, gate_settings, min_rows=1_000))
    assert (result.decision, result.exit_code, registry.current("production")) == ("confirm", 0, new)
    last = registry.history()[-1]
    assert (last["action"], last["stage"], last["to"]) == ("confirm", "production", new)
    again = run_guard(registry, labelled, gate_settings, min_rows=1_000)
    assert (again.decision, again.reasons) == ("idle", [f"production {new} was already confirmed on {last['time']}"])


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
