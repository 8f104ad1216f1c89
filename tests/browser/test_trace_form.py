"""Issue 14 defect 6: a refused trace import keeps what was sent, so "skip bad lines" works.

The server keeps nothing of a refused upload: the form that comes back holds the trace in
its text box (escaped: the text is the textarea's value, never markup), its name and the
"skip bad lines" box as they were sent. A file's text comes back in the text box too (a
browser cannot refill a file input).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mmu_model
from mmu_model import DEFAULT_FIXES
from tests.browser.test_visualizer import act, assert_no_console_errors, query, tree, wait_tree

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "tests" / "fixtures" / "seed-top-down.trace").read_text()
# Line 4 of the upload: the comment line and two trace lines come first. Its gpa is not a
# hex number (mmu_model/trace.py refuses it: "gpa must be a hex number"), and it carries
# markup that must come back as text, never as an element of the page.
BAD_LINE = "gpa = </textarea><i>zz</i>, old = 0, new = 0, level = 2, flood = 0"


def _bad_trace() -> str:
    lines = GOOD.splitlines()
    return "\n".join([*lines[:3], BAD_LINE, *lines[3:]]) + "\n"


def _expected_run(text: str) -> mmu_model.Run:
    """The run "skip bad lines" gives: the trace without its bad line 4."""
    return mmu_model.replay_trace(text, fixes=DEFAULT_FIXES, lenient=True)


def _import_refused(page: Any) -> str:
    with page.expect_response(lambda r: r.url.endswith("/traces")) as info:
        page.click("#trace-submit")
    assert 400 <= info.value.status < 500, info.value.status
    error = page.locator("#trace-error")
    error.wait_for(timeout=10_000)
    return " ".join(error.inner_text().split())


def _import_skipping_bad_lines(page: Any, text: str) -> None:
    run = _expected_run(text)
    page.check("#trace-lenient")
    act(page, lambda: page.click("#trace-submit"), run.default_step)
    assert re.fullmatch(r"[0-9a-f]{64}", query(page.url).get("trace", "")), page.url
    assert query(page.url).get("lenient") == "1", page.url
    assert tree(page)["lastStep"] == str(run.last_step("action"))


def test_pasted_trace_stays_in_the_box_after_an_error_and_skip_bad_lines_imports_it(
    page: Any,
) -> None:
    text = _bad_trace()
    page.goto("/")
    wait_tree(page)
    page.fill("#trace-text", text)
    page.fill("#trace-name", "my trace")
    message = _import_refused(page)
    assert "line 4" in message, message
    assert "gpa must be a hex number" in message, message
    # The same text, character for character (a textarea drops one leading newline only).
    assert page.locator("#trace-text").input_value() == text
    assert page.locator("#trace-name").input_value() == "my trace"
    assert page.locator("#trace-form i").count() == 0, "the pasted markup became an element"
    _import_skipping_bad_lines(page, text)
    assert_no_console_errors_but_refusal(page)


def test_uploaded_file_comes_back_as_text_after_an_error_and_skip_bad_lines_imports_it(
    page: Any, tmp_path: Path
) -> None:
    text = _bad_trace()
    upload = tmp_path / "bad.trace"
    upload.write_text(text)
    page.goto("/")
    wait_tree(page)
    page.set_input_files("#trace-file", str(upload))
    message = _import_refused(page)
    assert "line 4" in message, message
    assert page.locator("#trace-text").input_value() == text
    # The name a file upload gets by default is its filename.
    assert page.locator("#trace-name").input_value() == "bad.trace"
    _import_skipping_bad_lines(page, text)
    assert_no_console_errors_but_refusal(page)


def assert_no_console_errors_but_refusal(page: Any) -> None:
    """Chromium logs the refused upload's 4xx as a console error; nothing else may show."""
    page.console_errors[:] = [e for e in page.console_errors if "status of 4" not in e]
    assert_no_console_errors(page)
