"""schemathesis over the OpenAPI schema: no request it can make is a server error.

Examples per operation: MMU_VIZ_FUZZ_EXAMPLES (default 40, so a few hundred in `make
test`; a hand run with 1000 took the count in README).  Every check schemathesis has is
run (no 5xx; statuses, content types, headers and bodies as the schema documents them;
invalid data refused) except positive_data_acceptance: the schema types the spec fields
as strings and cannot say which combinations a run allows (trace with scenario, a spec
whose L1 is smaller than its L2), so a schema-valid query may rightly be a 422.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.settings import Settings

EXAMPLES = int(os.environ.get("MMU_VIZ_FUZZ_EXAMPLES", "40"))
CASES: list[int] = []  # one entry per case sent; tests/fuzz/conftest.py reports the count


# Built at import (schemathesis parametrizes at collection); its database is a temporary
# directory removed at exit.
_DB_DIR = tempfile.TemporaryDirectory(prefix="kvm-viz-fuzz-")
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(db_path=Path(_DB_DIR.name) / "traces.sqlite3")))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_has_no_server_error(case: Any) -> None:
    CASES.append(1)
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])

