# ----------------------------------------------------------------------------
# EDIT HERE: the pipeline. Add a stage by writing a function above and listing it.
# ----------------------------------------------------------------------------
STAGES: list[Callable[[Run], None]] = [
    run_tests,
    make_data,
    train_model,
    evaluate_model,
    gate_candidate,
    register_model,
    promote_to_staging,
    smoke_test_staging,
    score_staging,
    promote_to_production,
]
