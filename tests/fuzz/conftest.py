"""Report how many fuzz cases ran, at the end of the pytest run."""

from __future__ import annotations

import sys
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = []
    for module, what in (("tests.fuzz.test_openapi", "schemathesis cases"),
                         ("tests.fuzz.test_uploads", "generated uploads")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            counts.append(f"{len(loaded.CASES)} {what}")
    if counts:
        terminalreporter.write_line("fuzz: " + ", ".join(counts) + ", 0 server errors "
                                    "unless a test above failed")
