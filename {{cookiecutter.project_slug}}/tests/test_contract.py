"""The contract: schemathesis reads the service's own /openapi.json and holds the service to it.

Each operation the document lists gets requests the document allows, which must be answered as it says and never
with a 5xx, and, where it takes a body, requests it forbids, which must be refused with a 4xx. Every schemathesis
check runs on every answer: status codes, content types, response schemas, server errors, allowed data accepted
and forbidden data refused. A few hundred requests here; `tox -e fuzz` sends FUZZ_EXAMPLES (10,000) of each kind.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis 4 needs Python 3.11 or newer")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
MODES = {"allowed": schemathesis.GenerationMode.POSITIVE, "forbidden": schemathesis.GenerationMode.NEGATIVE}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_the_service_answers_every_request_as_its_own_openapi_document_says(app, mode):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /predict", "GET /health", "GET /ready", "GET /version"}
    if mode is MODES["forbidden"]:  # only a body or a parameter can break the document's rules
        operations = [op for op in operations if op.body or list(op.iter_parameters())]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answered_as_documented(case):
            case.call_and_validate()

        answered_as_documented()
