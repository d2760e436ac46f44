def gate_candidate(run: Run) -> None:
    """Compare the candidate with production on the same holdout; block if it is worse."""
    production = run.registry.current("production")
    folder = run.registry.folder(production) if production else None
    result = run_gate(run.candidate, run.holdout_csv, folder, run.settings.gate, run.library_upgrade)
    report = write_outputs(result, run.candidate)
    run.say(f"{result.decision} against production {production or '(none: first deploy)'}; report: {report}")
    if result.exit_code:
        raise StageFailed("the gate blocked the candidate: " + "; ".join(result.reasons))
