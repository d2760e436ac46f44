"""The AUC gate: a floor on the first deploy, then non-inferiority against production."""

import json
import shutil

import numpy as np
import pytest
import sklearn

from {{ cookiecutter.package_name }} import artifact, train
from {{ cookiecutter.package_name }}.cli import PROG, main
from {{ cookiecutter.package_name }}.config import TABLE, GateSettings
from {{ cookiecutter.package_name }}.data import Dataset, read_csv, write_csv
from {{ cookiecutter.package_name }}.gate import EXIT_CODES, AucComparison, AucEstimate, decide, render_report, run_gate, write_outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def estimate(auc):
    """An AUC estimate with a plausible interval."""
    return AucEstimate(auc, 0.01, auc - 0.02, auc + 0.02, 0.95, 100, 3_900)


def comparison(difference, lower_bound):
    """A paired comparison with the given difference and lower bound."""
    return AucComparison(estimate(0.9 + difference), estimate(0.9), difference, 0.005, lower_bound, 0.95)


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


def test_decide_passes_a_first_deploy_above_the_floor(gate_settings):
    assert decide(estimate(0.9), None, gate_settings) == ("pass", [])


def test_decide_blocks_a_first_deploy_below_the_floor(gate_settings):
    decision, reasons = decide(estimate(0.79), None, gate_settings)
    assert decision == "blocked"
    assert reasons == ["AUC 0.7900 is below the floor min_auc = 0.8"]


def test_decide_blocks_when_the_lower_bound_reaches_the_margin(gate_settings):
    decision, reasons = decide(estimate(0.9), comparison(-0.004, -0.010), gate_settings)
    assert decision == "blocked"
    assert "max_auc_drop = 0.01" in reasons[0] and "lower bound -0.0100" in reasons[0]


def test_decide_passes_a_small_drop_whose_lower_bound_stays_within_the_margin(gate_settings):
    assert decide(estimate(0.9), comparison(-0.004, -0.009), gate_settings) == ("pass", [])


def test_decide_blocks_when_the_bound_is_not_a_number(gate_settings):
    decision, _ = decide(estimate(0.9), comparison(0.01, float("nan")), gate_settings)
    assert decision == "blocked"


def test_the_report_names_the_confidence_level_in_use(model_dir, second_model_dir, week0):
    settings = GateSettings(min_auc=0.8, max_auc_drop=0.01, confidence=0.9)
    text = render_report(run_gate(second_model_dir, week0[1], model_dir, settings))
    assert "| model | version | AUC | 90% CI |" in text and "one-sided 90% lower bound" in text


def test_decide_lists_every_broken_rule(gate_settings):
    decision, reasons = decide(estimate(0.7), comparison(-0.2, -0.25), gate_settings)
    assert (decision, len(reasons)) == ("blocked", 2)


def test_a_first_deploy_is_decided_by_the_floor_alone(model_dir, week0, gate_settings):
    result = run_gate(model_dir, week0[1], None, gate_settings)
    assert (result.decision, result.exit_code, result.comparison) == ("pass", 0, None)
    assert result.candidate.auc > gate_settings.min_auc
    assert list(result.curves) == ["candidate"]


def test_the_gate_blocks_a_candidate_below_the_floor(model_dir, week0, floor_above_the_model):
    result = run_gate(model_dir, week0[1], None, GateSettings(min_auc=floor_above_the_model, max_auc_drop=0.01))
    assert (result.decision, result.exit_code) == ("blocked", 1)
    assert "below the floor" in result.reasons[0]


def test_the_gate_blocks_a_model_trained_on_labels_joined_one_row_off(
    misjoined_model, reference_model, data_files, gate_settings
):
    result = run_gate(misjoined_model, data_files[1], reference_model, gate_settings)
    assert (result.decision, result.exit_code) == ("blocked", 1)
    # the paired comparison catches it, whether or not the candidate also falls below the floor
    assert result.comparison.difference < -gate_settings.max_auc_drop
    assert any("worse than production" in reason for reason in result.reasons)
    assert set(result.curves) == {"candidate", "production"}


def test_the_gate_passes_a_retrain_with_only_the_seed_changed(second_model_dir, model_dir, data_files, gate_settings):
    result = run_gate(second_model_dir, data_files[1], model_dir, gate_settings)
    assert (result.decision, result.exit_code, result.reasons) == ("pass", 0, [])
    assert result.candidate_version != result.production_version


def test_the_gate_is_undecided_without_a_candidate_model(tmp_path, week0, gate_settings):
    result = run_gate(tmp_path / "missing", week0[1], None, gate_settings)
    assert (result.decision, result.exit_code) == ("undecided", 2)
    assert "could not decide" in result.reasons[0] and "missing" in result.reasons[0]


def test_the_gate_is_undecided_without_holdout_data(tmp_path, model_dir, gate_settings):
    result = run_gate(model_dir, tmp_path / "missing.csv", None, gate_settings)
    assert (result.decision, result.exit_code) == ("undecided", 2)
    assert "missing.csv" in result.reasons[0]


def test_the_gate_is_undecided_when_production_is_tampered_with(tmp_path, model_dir, week0, gate_settings):
    production = shutil.copytree(model_dir, tmp_path / "production")
    (production / "model.skops").write_bytes(b"tampered")
    result = run_gate(model_dir, week0[1], production, gate_settings)
    assert (result.decision, result.exit_code) == ("undecided", 2)
    assert "sha256" in result.reasons[0]


def saved_by_the_next_scikit_learn(model_dir, folder):
    """A copy of ``model_dir`` whose metadata says the next scikit-learn minor version saved it."""
    copy = shutil.copytree(model_dir, folder)
    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    metadata = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**metadata, "sklearn_version": f"{major}.{minor + 1}.0"}))
    artifact.write_manifest(copy)  # as that scikit-learn's save() wrote it
    return copy, f"{major}.{minor + 1}.0"


def test_a_production_model_from_another_scikit_learn_leaves_the_gate_undecided_with_both_ways_out(
    tmp_path, model_dir, second_model_dir, week0, gate_settings
):
    production, saved = saved_by_the_next_scikit_learn(model_dir, tmp_path / "production")
    result = run_gate(second_model_dir, week0[1], production, gate_settings)
    assert (result.decision, result.exit_code) == ("undecided", 2)
    assert f"install scikit-learn=={saved}" in result.reasons[0]
    assert "--library-upgrade" in result.reasons[0]


def test_a_declared_library_upgrade_decides_on_the_floor_alone_and_says_so(
    tmp_path, model_dir, second_model_dir, week0, gate_settings, floor_above_the_model
):
    production, _ = saved_by_the_next_scikit_learn(model_dir, tmp_path / "production")
    result = run_gate(second_model_dir, week0[1], production, gate_settings, library_upgrade=True)
    assert (result.decision, result.comparison, result.production_version) == ("pass", None, "production")
    assert "Production production was not compared" in render_report(result)
    floor = GateSettings(min_auc=floor_above_the_model, max_auc_drop=0.01)
    assert run_gate(second_model_dir, week0[1], production, floor, library_upgrade=True).decision == "blocked"


def test_a_declared_library_upgrade_still_compares_a_production_model_that_loads(
    misjoined_model, reference_model, week0, gate_settings
):
    result = run_gate(misjoined_model, week0[1], reference_model, gate_settings, library_upgrade=True)
    assert (result.decision, result.note) == ("blocked", None)
    assert any("worse than production" in reason for reason in result.reasons)


def test_write_outputs_writes_the_decision_the_report_and_the_roc_plot(
    tmp_path, misjoined_model, reference_model, week0, gate_settings
):
    result = run_gate(misjoined_model, week0[1], reference_model, gate_settings)
    report = write_outputs(result, tmp_path / "out")
    assert report == tmp_path / "out" / "report.md"
    gate = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert (gate["decision"], gate["exit_code"]) == ("blocked", 1)
    assert gate["comparison"]["difference"] == pytest.approx(result.comparison.difference)
    assert gate["settings"] == {"min_auc": 0.8, "max_auc_drop": 0.01, "confidence": 0.95}
    text = report.read_text()
    assert "## AUC gate: BLOCKED" in text
    assert f"{result.comparison.candidate.auc:.4f}" in text and f"{result.comparison.baseline.auc:.4f}" in text
    assert "min_auc = 0.8, max_auc_drop = 0.01" in text
    assert result.candidate_version in text and result.production_version in text
    assert "![ROC curves](roc.png)" in text
    assert (tmp_path / "out" / "roc.png").read_bytes().startswith(PNG_MAGIC)


def test_an_undecided_report_says_so_and_draws_no_plot(tmp_path, week0, gate_settings):
    result = run_gate(tmp_path / "missing", week0[1], None, gate_settings)
    report = write_outputs(result, tmp_path / "out")
    assert "BLOCKED (could not decide)" in report.read_text()
    assert json.loads((tmp_path / "out" / "gate.json").read_text())["exit_code"] == EXIT_CODES["undecided"] == 2
    assert not (tmp_path / "out" / "roc.png").exists()


def test_a_first_deploy_report_explains_that_the_floor_decided(model_dir, week0, gate_settings):
    text = render_report(run_gate(model_dir, week0[1], None, gate_settings))
    assert "## AUC gate: PASSED" in text
    assert "the floor alone decides" in text
    assert "- every rule holds" in text


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


def test_gate_warns_that_twelve_rows_cannot_detect_a_drop_of_one_point(
    tmp_path, twelve_rows, model_dir, second_model_dir, gate_settings
):
    result = run_gate(second_model_dir, twelve_rows, model_dir, gate_settings)
    # both models rank these rows perfectly: the paired standard error is 0, so the rules alone prove nothing
    assert (result.comparison.difference, result.comparison.std_error, result.decision) == (0, 0, "pass")
    (warning,) = result.warnings
    assert "2 positives and 10 negatives" in warning and "too small for max_auc_drop = 0.01" in warning
    assert result.min_detectable_drop == pytest.approx(0.028, abs=0.0005)
    assert f"{result.min_detectable_drop:.4f}" in warning
    report = write_outputs(result, tmp_path / "out").read_text()
    assert f"> **Warning:** {warning}" in report
    gate = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert gate["warnings"] == [warning] and gate["min_detectable_drop"] == pytest.approx(result.min_detectable_drop)


def test_the_report_at_auc_one_shows_an_interval_that_is_not_zero_width(twelve_rows, model_dir, gate_settings):
    result = run_gate(model_dir, twelve_rows, None, gate_settings)
    assert result.candidate.auc == 1.0
    text = render_report(result)
    assert f"| 1.0000 | {result.candidate.ci_low:.4f} to 1.0000 |" in text and "1.0000 to 1.0000" not in text


@pytest.mark.slow
def test_the_gate_does_not_warn_when_the_holdout_suffices(model_dir, second_model_dir, draw_holdout, gate_settings,
                                                           tmp_path):  # fmt: skip
    write_csv(tmp_path / "large.csv", draw_holdout(40_000))  # a large holdout, whatever the data's size
    result = run_gate(second_model_dir, tmp_path / "large.csv", model_dir, gate_settings)
    assert result.warnings == [] and result.min_detectable_drop < gate_settings.max_auc_drop
    assert "Warning" not in render_report(result)


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
def test_gate_against_a_folder_needs_no_registry(workdir, model_dir, second_model_dir, data_files, capsys):
    code, out, err = gate_command(
        capsys, str(second_model_dir), "--against", str(model_dir), "--data", str(data_files[1]), "--out", "out"
    )
    assert (code, out.splitlines()[0], err) == (0, "## AUC gate: PASSED", "")
    assert f"| baseline | {model_dir.name} |" in out and "| production |" not in out
    assert f"Baseline: {model_dir}" in out
    assert not (workdir / "registry").exists()
    gate = json.loads((workdir / "out" / "gate.json").read_text())
    assert (gate["baseline"], gate["production_version"]) == ("baseline", model_dir.name)


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


@pytest.mark.slow
def test_gate_against_blocks_a_worse_model_by_the_same_rules(workdir, model_dir, data_files, capsys):
    training = read_csv(data_files[0])
    shuffled = Dataset(training.X, np.random.default_rng(0).permutation(training.y))
    write_csv(workdir / "shuffled.csv", shuffled)
    worse, _ = train.train(workdir / "shuffled.csv", data_files[1], workdir / "artifacts", seed=0)
    code, out, _ = gate_command(capsys, str(worse), "--against", str(model_dir), "--data", str(data_files[1]))
    assert (code, out.splitlines()[0]) == (1, "## AUC gate: BLOCKED")
    assert "AUC may be worse than baseline by more than max_auc_drop = 0.01" in out


@pytest.mark.parametrize("against", ["no/such/folder", "no-such-version"])
def test_gate_against_a_model_that_is_not_there_is_one_line_and_exit_2(workdir, model_dir, data_files, capsys, against):
    code, out, err = gate_command(
        capsys, str(model_dir), "--against", against, "--data", str(data_files[1]), "--out", "o"
    )
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith(f"{PROG}: error:") and against in err


def test_gate_against_a_model_that_fails_to_load_is_undecided_with_one_error_line(
    workdir, model_dir, data_files, capsys
):
    tampered = shutil.copytree(model_dir, workdir / "tampered")
    (tampered / "model.skops").write_bytes(b"tampered")
    code, out, err = gate_command(
        capsys, str(model_dir), "--against", str(tampered), "--data", str(data_files[1]), "--out", "out"
    )
    assert (code, out.splitlines()[0]) == (2, "## AUC gate: BLOCKED (could not decide)")
    assert len(err.splitlines()) == 1 and err.startswith(f"{PROG}: error: could not decide: baseline")
    assert "sha256" in err


def test_evaluate_warns_when_the_holdout_is_too_small(workdir, twelve_rows, model_dir, capsys):
    code = main(["evaluate", str(model_dir), "--data", str(twelve_rows)])
    out, err = capsys.readouterr()
    estimate = json.loads(out)
    assert code == 0 and estimate["ci_low"] < estimate["ci_high"]
    (warning,) = estimate["warnings"]
    assert err == f"{PROG}: warning: {warning}\n"
    assert "2 positives and 10 negatives" in warning and f"{estimate['min_detectable_drop']:.4f}" in warning
