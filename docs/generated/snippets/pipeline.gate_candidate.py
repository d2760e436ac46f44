def gate_candidate(run: Run) -> None:
    """Compare the candidate with production on the same holdout; block if it is worse."""
    folder = run.registry.current_folder("production")
    result = run_gate(run.candidate, run.holdout_csv, folder, run.settings.gate, run.library_upgrade)
    report = write_outputs(result, run.candidate)
    production = folder.name if folder else "(none: first deploy)"
    run.say(f"{result.decision} against production {production}; report: {report}")
    if result.exit_code:
        raise StageFailed("the gate blocked the candidate: " + "; ".join(result.reasons))
