"""The AUC gate: its statistics (DeLong AUCs, logit intervals, the smallest detectable drop) checked against
scikit-learn, the bootstrap, simulations and published numbers; then its rules, its reports and `gate --against`."""

import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import sklearn
from scipy import special, stats
from sklearn.metrics import roc_auc_score

from {{ cookiecutter.package_name }} import artifact, gate, train
from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.config import TABLE, GateSettings
from {{ cookiecutter.package_name }}.data import Dataset, read_csv, write_csv
from {{ cookiecutter.package_name }}.gate import AucComparison, AucEstimate, decide, run_gate

MAJOR, MINOR = (int(part) for part in sklearn.__version__.split(".")[:2])
NEXT_SKLEARN = f"{MAJOR}.{MINOR + 1}.0"  # a version whose models this scikit-learn cannot load
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------------------
# The statistics
# ---------------------------------------------------------------------------------------------------------------------
def scored_sample(n=2_000, seed=0):
    """Labels (about 20% positive) and two correlated, imperfect scores of them."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    shared = rng.normal(size=n)
    better = 1.2 * y + shared + 0.5 * rng.normal(size=n)
    worse = 0.9 * y + shared + 0.5 * rng.normal(size=n)
    return y, better, worse


def bootstrap_aucs(y, scores, rounds=1_000, seed=1):
    """AUC of every score row on each of ``rounds`` resamples of the rows (Mann-Whitney via ranks)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(y), size=(rounds, len(y)))
    labels = y[rows].astype(bool)
    positives = labels.sum(axis=1)
    negatives = len(y) - positives
    aucs = []
    for score in np.atleast_2d(scores):
        ranks = stats.rankdata(score[rows], axis=1)
        rank_sum = np.where(labels, ranks, 0).sum(axis=1)
        aucs.append((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))
    return np.array(aucs)


def separated(positives, negatives, perfect=True):
    """Labels and scores that rank every positive above every negative (or every negative above, if not perfect)."""
    y = np.array([1] * positives + [0] * negatives)
    return y, (y if perfect else 1 - y) + np.linspace(0, 0.5, len(y))


def test_delong_aucs_equal_scikit_learns_with_ties_constant_and_identical_scores():
    y, better, worse = scored_sample()
    aucs, _ = gate.delong(y, np.vstack([better, worse]))
    assert aucs == pytest.approx([roc_auc_score(y, better), roc_auc_score(y, worse)], abs=1e-12)
    coarse = np.round(better)  # a handful of distinct values, so most scores are tied
    aucs, covariance = gate.delong(y, coarse)
    assert aucs[0] == pytest.approx(roc_auc_score(y, coarse), abs=1e-12) and covariance[0, 0] > 0
    constant = gate.auc_estimate(y, np.zeros(len(y)))
    assert (constant.auc, constant.std_error) == (pytest.approx(0.5), pytest.approx(0.0))
    identical = gate.compare_aucs(y, better, better.copy())
    assert (identical.difference, identical.std_error) == (0, pytest.approx(0.0, abs=1e-9))


@pytest.mark.parametrize(("positives", "negatives"), [(1, 50), (50, 1), (0, 50)])
def test_delong_refuses_too_few_positives_or_negatives(positives, negatives):
    y = np.array([1] * positives + [0] * negatives)
    with pytest.raises(ValueError, match="at least 2 positive and 2 negative"):
        gate.delong(y, np.linspace(0, 1, len(y)))


@pytest.mark.slow
def test_delong_standard_errors_of_an_auc_and_of_a_paired_difference_agree_with_the_bootstrap():
    y, better, worse = scored_sample()
    estimate, comparison = gate.auc_estimate(y, better), gate.compare_aucs(y, better, worse)
    candidate, baseline = bootstrap_aucs(y, np.vstack([better, worse]))
    assert estimate.std_error == pytest.approx(candidate.std(ddof=1), rel=0.15)
    assert estimate.auc == pytest.approx(candidate.mean(), abs=0.005)
    assert comparison.std_error == pytest.approx((candidate - baseline).std(ddof=1), rel=0.15)
    assert comparison.difference == pytest.approx(roc_auc_score(y, better) - roc_auc_score(y, worse), abs=1e-12)
    # pairing matters: the difference is far more precise than the two AUCs taken apart
    assert comparison.std_error < 0.6 * np.hypot(comparison.candidate.std_error, comparison.baseline.std_error)


def test_the_interval_is_symmetric_on_the_logit_scale_and_the_lower_bound_one_sided():
    y, better, worse = scored_sample()
    narrow, wide = gate.auc_estimate(y, better, confidence=0.8), gate.auc_estimate(y, better, confidence=0.99)
    assert narrow.ci_low < narrow.auc < narrow.ci_high
    assert wide.ci_low < narrow.ci_low and narrow.ci_high < wide.ci_high
    # logit(AUC) +/- z * SE / (AUC (1 - AUC)), by the delta method, at the continuity-corrected AUC
    pairs = wide.positives * wide.negatives
    corrected = (pairs * wide.auc + 0.5) / (pairs + 1)
    half_width = stats.norm.ppf(0.995) * wide.std_error / (corrected * (1 - corrected))
    assert special.logit(wide.ci_high) - special.logit(corrected) == pytest.approx(half_width)
    assert special.logit(corrected) - special.logit(wide.ci_low) == pytest.approx(half_width)
    assert (narrow.positives, narrow.negatives) == (int(y.sum()), int(len(y) - y.sum()))
    data = narrow.to_dict()
    assert data["confidence"] == 0.8
    assert (
        data["min_detectable_drop"]
        == gate.detectable_drop(narrow)
        == gate.min_detectable_drop(narrow.auc, narrow.positives, narrow.negatives, 0.8)
    )
    comparison = gate.compare_aucs(y, worse, better, confidence=0.95)
    assert comparison.difference < 0
    assert comparison.lower_bound == pytest.approx(comparison.difference - stats.norm.ppf(0.95) * comparison.std_error)


@pytest.mark.parametrize("seed", range(5))
def test_the_interval_stays_inside_zero_one_contains_the_auc_and_is_never_zero_width(seed):
    rng = np.random.default_rng(seed)
    y = np.array([1, 1, 1] + [0] * 9)
    for scores in (rng.normal(size=12) + 3 * y, rng.integers(0, 2, size=12), np.zeros(12), y, 1 - y):
        estimate = gate.auc_estimate(y, scores)
        assert 0 <= estimate.ci_low <= estimate.auc <= estimate.ci_high <= 1
        assert estimate.ci_low < estimate.ci_high


def test_the_interval_at_auc_one_or_zero_has_a_finite_width_that_narrows_as_the_holdout_grows():
    one, zero = gate.auc_estimate(*separated(2, 10)), gate.auc_estimate(*separated(2, 10, perfect=False))
    assert (one.auc, one.std_error, one.ci_high) == (1.0, 0.0, 1.0) and one.ci_low == pytest.approx(0.70, abs=0.005)
    assert (zero.auc, zero.ci_low) == (0.0, 0.0) and 0.1 < zero.ci_high < 1
    assert one.ci_low < gate.auc_estimate(*separated(100, 1_000)).ci_low < 1.0


def binormal_holdouts(auc, positives, negatives, rounds, seed, models=1, correlation=0.9):
    """Labels, and scores shaped (rounds, models, rows): normal in each class, with a true AUC of ``auc``.

    Two models' scores correlate at ``correlation`` row by row.
    """
    rng = np.random.default_rng(seed)
    y = np.array([1] * positives + [0] * negatives)
    shared = math.sqrt(correlation) * rng.normal(size=(rounds, 1, len(y)))
    own = math.sqrt(1 - correlation) * rng.normal(size=(rounds, models, len(y)))
    return y, math.sqrt(2) * stats.norm.ppf(auc) * y + shared + own


def exponential_holdouts(auc, positives, negatives, rounds, seed, correlation=0.9):
    """Holdouts scored by two alike models whose scores are exponential in each class (Hanley-McNeil's own model).

    Negatives follow Exp(1) and positives Exp(1/auc - 1), so P(positive > negative) = auc; a Gaussian copula
    correlates the two models' scores row by row.
    """
    y, normal = binormal_holdouts(0.5, positives, negatives, rounds, seed, models=2, correlation=correlation)
    return y, -np.log(stats.norm.sf(normal)) / np.where(y == 1, 1 / auc - 1, 1.0)


def simulated_delong(y, scores):
    """Every holdout's AUCs (rounds, models) and DeLong variances (rounds, models, models), by the project's delong."""
    rounds, models, _ = scores.shape
    aucs, variances = [], []
    for chunk in np.array_split(scores, max(1, rounds // 100)):
        auc, covariance = gate.delong(y, chunk.reshape(-1, len(y)))
        blocks = covariance.reshape(len(chunk), models, len(chunk), models)
        aucs.append(auc.reshape(len(chunk), models))
        variances.append(blocks[np.arange(len(chunk)), :, np.arange(len(chunk)), :])
    return np.concatenate(aucs), np.concatenate(variances)


def paired(aucs, variances):
    """The first and second model's AUCs and the DeLong standard error of their difference, per holdout."""
    difference_variance = variances[:, 0, 0] + variances[:, 1, 1] - 2 * variances[:, 0, 1]
    return aucs[:, 0], aucs[:, 1], np.sqrt(np.clip(difference_variance, 0, None))


@pytest.mark.parametrize(("auc", "positives", "negatives"), [(0.9, 30, 300), (0.99, 10, 50)])
def test_the_logit_interval_covers_the_true_auc_where_the_plain_interval_does_not(auc, positives, negatives):
    aucs, variances = simulated_delong(*binormal_holdouts(auc, positives, negatives, rounds=1_000, seed=0))
    covered, plain = [], []
    for estimate, variance in zip(aucs[:, 0], variances[:, 0, 0], strict=True):
        low, high = gate.logit_interval(estimate, variance, positives, negatives, 0.95)
        covered.append(low <= auc <= high)
        half_width = stats.norm.ppf(0.975) * math.sqrt(variance)
        plain.append(estimate - half_width <= auc <= estimate + half_width)
    # measured: 93.7% and 98.0% for the logit interval; 91.0% and 65.5% for AUC +/- z * SE
    assert 0.9 <= np.mean(covered) <= 0.99
    if auc > 0.95:
        assert np.mean(plain) < 0.75


def test_hanley_mcneil_and_the_detectable_drop_hold_in_a_simulation_of_their_model():
    first, _, _ = paired(*simulated_delong(*exponential_holdouts(0.9, 30, 150, rounds=1_000, seed=0)))
    assert first.mean() == pytest.approx(0.9, abs=0.003)
    # at a correlation of 0.5 the difference's SE is one AUC's: the drop is z_sum times Hanley and McNeil's SE
    z_sum = stats.norm.ppf(0.95) + stats.norm.ppf(gate.POWER)
    hanley_mcneil = gate.min_detectable_drop(0.9, 30, 150, correlation=0.5) / z_sum
    assert hanley_mcneil == pytest.approx(first.std(ddof=1), rel=0.06)
    first, second, std_error = paired(*simulated_delong(*exponential_holdouts(0.9, 30, 150, rounds=1_000, seed=1)))
    correlation = np.corrcoef(first, second)[0, 1]
    drop = gate.min_detectable_drop(0.9, 30, 150, confidence=0.95, correlation=correlation)
    assert drop == pytest.approx(z_sum * (first - second).std(ddof=1), rel=0.1)
    # the gate's own rule, with max_auc_drop = drop: an equally good candidate passes with about POWER (measured: 92.8%)
    passed = np.mean(first - second - stats.norm.ppf(0.95) * std_error > -drop)
    assert passed == pytest.approx(gate.POWER, abs=0.05)


def test_min_detectable_drop_errs_on_the_side_of_warning_for_normal_scores():
    holdouts = binormal_holdouts(0.9, 30, 150, rounds=1_000, seed=2, models=2)
    first, second, _ = paired(*simulated_delong(*holdouts))
    correlation = np.corrcoef(first, second)[0, 1]
    simulated = (stats.norm.ppf(0.95) + stats.norm.ppf(gate.POWER)) * (first - second).std(ddof=1)
    # Hanley-McNeil's exponential model overstates the spread of normal scores' AUC (measured: 1.27 times here)
    assert simulated < gate.min_detectable_drop(0.9, 30, 150, correlation=correlation) < 1.5 * simulated


def test_the_published_numbers_of_the_tutorials_holdout_and_of_the_examples_positive_rate():
    # the tutorial's holdout: 20,000 rows, 583 positives, production's AUC 0.8921 with a DeLong SE of 0.0079
    low, high = gate.logit_interval(0.8921, 0.0079**2, 583, 19_417, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.8756, 0.9066)
    assert abs(gate.continuity_corrected(0.8921, 583, 19_417) - 0.8921) < 1e-7
    tutorial = AucEstimate(0.8921, 0.0079, low, high, 0.95, 583, 19_417)
    assert gate.detectable_drop(tutorial) == pytest.approx(0.0041, abs=0.0001)
    assert gate.holdout_warning(tutorial, max_auc_drop=0.01) is None

    def drop(positives, **options):  # at the example's AUC and positive rate (3%)
        return gate.min_detectable_drop(0.89, positives, round(positives * 97 / 3), **options)

    assert drop(100) > 0.01 > drop(105)  # a one-point margin needs about a hundred positives
    assert drop(400) < drop(100) and drop(100, correlation=0.999) < drop(100)  # more positives, more alike models
    assert gate.min_detectable_drop(1.0, 2, 10) > 0  # the continuity correction keeps it honest at AUC 1


def one_misplaced(positives, negatives):
    """Scores 0..N-1 ranking every positive above every negative, but for one row of the smaller class moved midway."""
    y = np.array([0] * negatives + [1] * positives)
    moved, middle = (negatives if positives < negatives else negatives - 1), len(y) // 2
    y[[moved, middle]] = y[[middle, moved]]
    return y, np.arange(len(y), dtype=float)


@pytest.mark.parametrize(("positives", "negatives"), [(2, 10), (500, 3)], ids=["few positives", "few negatives"])
def test_holdout_warning_names_the_counts_and_the_smallest_detectable_drop(positives, negatives):
    estimate = gate.auc_estimate(*one_misplaced(positives, negatives))
    assert 0.75 < estimate.auc < 0.9
    warning = gate.holdout_warning(estimate, max_auc_drop=0.01)
    assert f"{positives} positives and {negatives} negatives" in warning
    assert "too small for max_auc_drop = 0.01" in warning
    drop = gate.detectable_drop(estimate)
    assert f"{drop:.4f}" in warning and drop > 0.01
    assert gate.holdout_warning(estimate, max_auc_drop=0.5) is None


def test_the_detectable_drop_is_never_below_what_the_gates_own_paired_bound_can_resolve():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(40), np.zeros(405)].astype(int)
    scores = np.where(y == 1, rng.normal(4, 1, y.size), rng.normal(0, 1, y.size))  # AUC near 1
    estimate = gate.auc_estimate(y, scores)
    # a candidate this holdout cannot tell from production, with the paired difference's standard error it measured
    alike = AucComparison(estimate, estimate, difference=-0.002, std_error=0.004, lower_bound=-0.0086, confidence=0.95)
    bound = (stats.norm.ppf(estimate.confidence) + stats.norm.ppf(gate.POWER)) * alike.std_error
    assert gate.detectable_drop(estimate, alike) >= bound > gate.detectable_drop(estimate)
    warning = gate.holdout_warning(estimate, 0.005, alike)
    assert f"this holdout (445 rows: 40 positives and 405 negatives) can detect AUC drops of {bound:.4f}" in warning
    assert "widen max_auc_drop to" in warning
    assert gate.holdout_warning(estimate, round(bound + 0.001, 3), alike) is None
    # a clearly worse candidate's spread says nothing about an equally good one's: the model's own figure stands
    worse = replace(alike, difference=-0.05, lower_bound=-0.0566)
    assert gate.detectable_drop(estimate, worse) == gate.detectable_drop(estimate)


# ---------------------------------------------------------------------------------------------------------------------
# The rules and the reports
# ---------------------------------------------------------------------------------------------------------------------
def auc_of(auc):
    """An AUC estimate with a plausible interval."""
    return AucEstimate(auc, 0.01, auc - 0.02, auc + 0.02, 0.95, 100, 3_900)


def comparison(difference, lower_bound):
    """A paired comparison with the given difference and lower bound."""
    return AucComparison(auc_of(0.9 + difference), auc_of(0.9), difference, 0.005, lower_bound, 0.95)


WORSE = "AUC may be worse than production by more than max_auc_drop = 0.01: difference {:+.4f}, 95% lower bound {}"


@pytest.mark.parametrize(
    ("auc", "compared", "reasons"),
    [
        pytest.param(0.9, None, [], id="first deploy above the floor passes"),
        pytest.param(0.79, None, ["AUC 0.7900 is below the floor min_auc = 0.8"], id="first deploy below the floor"),
        pytest.param(0.9, (-0.004, -0.010), [WORSE.format(-0.004, "-0.0100")], id="bound reaches the margin"),
        pytest.param(0.9, (-0.004, -0.009), [], id="small drop whose bound stays within the margin passes"),
        pytest.param(0.9, (0.01, float("nan")), [WORSE.format(0.01, "+nan")], id="bound not a number"),
        pytest.param(
            0.7,
            (-0.2, -0.25),
            ["AUC 0.7000 is below the floor min_auc = 0.8", WORSE.format(-0.2, "-0.2500")],
            id="every broken rule listed",
        ),
    ],
)
def test_decide_blocks_for_each_broken_rule_and_passes_otherwise(auc, compared, reasons, gate_settings):
    expected = "blocked" if reasons else "pass"
    assert decide(auc_of(auc), comparison(*compared) if compared else None, gate_settings) == (expected, reasons)


def generated_fit(data, seed=0):
    """train.fit as generated: the gate's tests must hold whatever a learner later does to train.fit."""
    return train.build_model(seed).fit(data.X, data.y)


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory, data_files):
    """Production for the unit-error tests: a model of the configured data, trained by the generated fit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "fit", generated_fit)
        folder, _ = train.train(*data_files, tmp_path_factory.mktemp("reference"), seed=0)
    return folder


@pytest.fixture(scope="module")
def misjoined_model(tmp_path_factory, data_files):
    """A candidate trained on labels joined one row off: a bug that costs AUC on any table with a signal."""

    def fit_with_labels_one_row_off(data, seed=0):
        return generated_fit(Dataset(data.X, np.roll(data.y, 1)), seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "fit", fit_with_labels_one_row_off)
        folder, _ = train.train(*data_files, tmp_path_factory.mktemp("misjoined"), seed=0)
    return folder


def saved_by_the_next_scikit_learn(model_dir, folder):
    """A copy of ``model_dir`` whose metadata says the next scikit-learn minor version saved it."""
    copy = shutil.copytree(model_dir, folder)
    metadata = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**metadata, "sklearn_version": NEXT_SKLEARN}))
    artifact.write_manifest(copy)  # as that scikit-learn's save() wrote it
    return copy


@pytest.mark.parametrize(
    ("library_upgrade", "production_version", "note"),
    [
        pytest.param(
            False, None, "No production model yet: the floor alone decides (first deploy).", id="first deploy"
        ),
        pytest.param(
            True,
            "production",
            "Production production was not compared: it was saved by another scikit-learn minor version "
            "(--library-upgrade), so the floor alone decides.",
            id="declared library upgrade",
        ),
    ],
)
def test_the_floor_alone_decides_a_first_deploy_and_a_declared_library_upgrade(
    library_upgrade, production_version, note, request, tmp_path, model_dir, data_files, gate_settings
):
    production = saved_by_the_next_scikit_learn(model_dir, tmp_path / "production") if library_upgrade else None
    result = run_gate(model_dir, data_files[1], production, gate_settings, library_upgrade=library_upgrade)
    assert (result.decision, result.exit_code, result.comparison, result.note) == ("pass", 0, None, note)
    assert result.candidate.auc > gate_settings.min_auc and list(result.curves) == ["candidate"]
    assert result.production_version == production_version
    text = gate.render_report(result)
    assert text.startswith("## AUC gate: PASSED") and "- every rule holds" in text and note in text
    floor = GateSettings(min_auc=request.getfixturevalue("floor_above_the_model"), max_auc_drop=0.01)
    blocked = run_gate(model_dir, data_files[1], production, floor, library_upgrade=library_upgrade)
    assert (blocked.decision, blocked.exit_code) == ("blocked", 1) and "below the floor" in blocked.reasons[0]


@pytest.mark.parametrize("library_upgrade", [False, True], ids=["plain", "declared library upgrade"])
def test_the_gate_blocks_a_model_trained_on_labels_joined_one_row_off(
    library_upgrade, misjoined_model, reference_model, data_files, gate_settings
):
    # a declared library upgrade still compares a production model that loads
    result = run_gate(misjoined_model, data_files[1], reference_model, gate_settings, library_upgrade=library_upgrade)
    assert (result.decision, result.exit_code, result.note) == ("blocked", 1, None)
    # the paired comparison catches it, whether or not the candidate also falls below the floor
    assert result.comparison.difference < -gate_settings.max_auc_drop
    assert any("worse than production" in reason for reason in result.reasons)
    assert set(result.curves) == {"candidate", "production"}


def test_the_gate_passes_a_retrain_with_only_the_seed_changed_and_reports_its_confidence(
    second_model_dir, model_dir, data_files, gate_settings
):
    result = run_gate(second_model_dir, data_files[1], model_dir, gate_settings)
    assert (result.decision, result.exit_code, result.reasons) == ("pass", 0, [])
    assert result.candidate_version != result.production_version
    text = gate.render_report(
        run_gate(second_model_dir, data_files[1], model_dir, replace(gate_settings, confidence=0.9))
    )
    assert "| model | version | AUC | 90% CI |" in text and "one-sided 90% lower bound" in text


def no_candidate(tmp_path, model_dir, holdout):
    return tmp_path / "missing", holdout, None


def no_holdout(tmp_path, model_dir, holdout):
    return model_dir, tmp_path / "missing.csv", None


def tampered_production(tmp_path, model_dir, holdout):
    production = shutil.copytree(model_dir, tmp_path / "production")
    (production / "model.skops").write_bytes(b"tampered")
    return model_dir, holdout, production


def production_from_the_next_scikit_learn(tmp_path, model_dir, holdout):
    return model_dir, holdout, saved_by_the_next_scikit_learn(model_dir, tmp_path / "production")


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        pytest.param(no_candidate, ["missing"], id="no candidate model"),
        pytest.param(no_holdout, ["missing.csv"], id="no holdout data"),
        pytest.param(tampered_production, ["production: ", "sha256"], id="tampered production"),
        pytest.param(
            production_from_the_next_scikit_learn,
            [f"install scikit-learn=={NEXT_SKLEARN}", "--library-upgrade"],
            id="production saved by another scikit-learn, no upgrade declared",
        ),
    ],
)
def test_the_gate_is_undecided_when_it_cannot_score_and_its_report_says_why(
    setup, says, tmp_path, model_dir, data_files, gate_settings
):
    result = run_gate(*setup(tmp_path, model_dir, data_files[1]), gate_settings)
    assert (result.decision, result.exit_code) == ("undecided", 2)
    (reason,) = result.reasons
    assert reason.startswith("could not decide: ") and all(part in reason for part in says)
    report = gate.write_outputs(result, tmp_path / "out")
    assert report.read_text().startswith("## AUC gate: BLOCKED (could not decide)")
    assert json.loads((tmp_path / "out" / "gate.json").read_text())["exit_code"] == gate.EXIT_CODES["undecided"] == 2
    assert not (tmp_path / "out" / "roc.png").exists()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)\\>"),
        ("[click](https://example.com)", "\\[click\\](https://example.com)"),
        ("a | b\n## heading", "a \\| b ## heading"),
        ("`code` and \\", "\\`code\\` and \\\\"),
        ("max_auc_drop = 0.01 (95% lower bound -0.0186)", "max_auc_drop = 0.01 (95% lower bound -0.0186)"),
    ],
    ids=["html", "link", "table-cell-and-line", "code-span", "plain-words-unchanged"],
)
def test_a_value_written_into_a_report_is_literal_markdown(text, shown, gate_settings):
    assert gate.literal(text) == shown
    result = gate.GateResult("undecided", [f"could not decide: {text}"], gate_settings)
    assert f"- could not decide: {shown}\n" in gate.render_report(result)


def test_write_outputs_writes_the_decision_the_report_and_the_roc_plot(
    tmp_path, misjoined_model, reference_model, data_files, gate_settings
):
    result = run_gate(misjoined_model, data_files[1], reference_model, gate_settings)
    report = gate.write_outputs(result, tmp_path / "out")
    assert report == tmp_path / "out" / "report.md"
    written = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert (written["decision"], written["exit_code"]) == ("blocked", 1)
    assert written["comparison"]["difference"] == pytest.approx(result.comparison.difference)
    assert written["settings"] == {"min_auc": 0.8, "max_auc_drop": 0.01, "confidence": 0.95}
    text = report.read_text()
    assert "## AUC gate: BLOCKED" in text
    assert f"{result.comparison.candidate.auc:.4f}" in text and f"{result.comparison.baseline.auc:.4f}" in text
    assert "min_auc = 0.8, max_auc_drop = 0.01" in text
    assert result.candidate_version in text and result.production_version in text
    assert "![ROC curves](roc.png)" in text
    assert (tmp_path / "out" / "roc.png").read_bytes().startswith(PNG_MAGIC)


@pytest.fixture
def twelve_rows(tmp_path, model_dir, data_files):
    """A 12-row holdout from the configured data: the 2 positives and 10 negatives ``model_dir`` ranks best."""
    holdout = read_csv(data_files[1])
    scores = artifact.load(model_dir).probability(holdout.X)
    positives, negatives = np.flatnonzero(holdout.y == 1), np.flatnonzero(holdout.y == 0)
    rows = np.concatenate(
        [positives[np.argsort(-scores[positives])[:2]], negatives[np.argsort(scores[negatives])[:10]]]
    )
    write_csv(tmp_path / "twelve.csv", Dataset(holdout.X[rows], holdout.y[rows]))
    return tmp_path / "twelve.csv"


def test_the_gate_warns_that_twelve_rows_cannot_detect_a_drop_of_one_point(
    tmp_path, twelve_rows, model_dir, second_model_dir, gate_settings
):
    result = run_gate(second_model_dir, twelve_rows, model_dir, gate_settings)
    # both models rank these rows perfectly: the paired standard error is 0, so the rules alone prove nothing
    assert (result.comparison.difference, result.comparison.std_error, result.decision) == (0, 0, "pass")
    (warning,) = result.warnings
    assert "2 positives and 10 negatives" in warning and "too small for max_auc_drop = 0.01" in warning
    assert result.min_detectable_drop == pytest.approx(0.037, abs=0.0005)
    assert f"{result.min_detectable_drop:.4f}" in warning
    report = gate.write_outputs(result, tmp_path / "out").read_text()
    assert f"> **Warning:** {warning}" in report
    written = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert written["warnings"] == [warning]
    assert written["min_detectable_drop"] == pytest.approx(result.min_detectable_drop)
    # at AUC 1 the report's interval is not zero-width
    assert result.candidate.auc == 1.0
    assert f"| 1.0000 | {result.candidate.ci_low:.4f} to 1.0000 |" in report and "1.0000 to 1.0000" not in report


@pytest.mark.slow
def test_the_gate_does_not_warn_when_the_holdout_suffices(model_dir, second_model_dir, draw_holdout, gate_settings,
                                                           tmp_path):  # fmt: skip
    write_csv(tmp_path / "large.csv", draw_holdout(40_000))  # a large holdout, whatever the data's size
    result = run_gate(second_model_dir, tmp_path / "large.csv", model_dir, gate_settings)
    assert result.warnings == [] and result.min_detectable_drop < gate_settings.max_auc_drop
    assert "Warning" not in gate.render_report(result)


# ---------------------------------------------------------------------------------------------------------------------
# gate --against
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty project folder as the working directory, with fixed gate thresholds and no registry."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.{TABLE}.gate]\nmin_auc = 0.8\nmax_auc_drop = 0.01\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODEL_REGISTRY", raising=False)
    return tmp_path


def gate_command(capsys, *args):
    """Run the gate command in-process; return (exit code, stdout, stderr)."""
    code = main(["gate", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_gate_against_a_folder_needs_no_registry_and_blocks_a_worse_model_by_the_same_rules(
    workdir, model_dir, second_model_dir, data_files, capsys
):
    holdout = str(data_files[1])
    code, out, err = gate_command(
        capsys, str(second_model_dir), "--against", str(model_dir), "--data", holdout, "--out", "out"
    )
    assert (code, out.splitlines()[0], err) == (0, "## AUC gate: PASSED", "")
    assert f"| baseline | {model_dir.name} |" in out and "| production |" not in out
    assert f"Baseline: {model_dir}" in out
    assert not (workdir / "registry").exists()
    written = json.loads((workdir / "out" / "gate.json").read_text())
    assert (written["baseline"], written["production_version"]) == ("baseline", model_dir.name)
    training = read_csv(data_files[0])
    write_csv(workdir / "shuffled.csv", Dataset(training.X, np.random.default_rng(0).permutation(training.y)))
    worse, _ = train.train(workdir / "shuffled.csv", data_files[1], workdir / "artifacts", seed=0)
    code, out, _ = gate_command(capsys, str(worse), "--against", str(model_dir), "--data", holdout)
    assert (code, out.splitlines()[0]) == (1, "## AUC gate: BLOCKED")
    assert "AUC may be worse than baseline by more than max_auc_drop = 0.01" in out


def test_gate_against_a_registered_version_compares_with_it_not_with_production(
    workdir, registry, model_dir, second_model_dir, data_files, capsys
):
    assert registry.current("production") == model_dir.name
    version = registry.register(second_model_dir, reason="test")
    code, out, _ = gate_command(
        capsys, str(model_dir), "--against", version, "--data", str(data_files[1]), "--out", "o"
    )
    assert code == 0
    assert f"| baseline | {version} |" in out and f"| candidate | {model_dir.name} |" in out


@pytest.mark.parametrize(
    ("against", "report", "error"),
    [
        pytest.param("no/such/folder", [], ["no/such/folder"], id="no such folder"),
        pytest.param("no-such-version", [], ["no-such-version"], id="no such version"),
        pytest.param(
            "tampered",
            ["## AUC gate: BLOCKED (could not decide)"],
            ["could not decide: baseline", "sha256"],
            id="a model that fails to load",
        ),
    ],
)
def test_gate_against_a_model_it_cannot_use_is_one_error_line_and_exit_2(
    against, report, error, workdir, model_dir, data_files, capsys
):
    tampered = shutil.copytree(model_dir, workdir / "tampered")
    (tampered / "model.skops").write_bytes(b"tampered")
    code, out, err = gate_command(
        capsys, str(model_dir), "--against", against, "--data", str(data_files[1]), "--out", "out"
    )
    assert (code, out.splitlines()[:1]) == (2, report)
    assert len(err.splitlines()) == 1 and err.startswith(f"{PROG}: error: ")
    assert all(part in err for part in error)
