"""How a view names itself outside the page: export file names and a changed scenario's text.

An exported file says what it shows: the source (a built-in scenario, marked "custom" when
spec fields were changed, or a stored trace by its id), the fix set, and the step with its
grain (step 7 of the guest actions is not op step 7); a compare export names both fix sets.
File names keep to [A-Za-z0-9._+-], so they are safe in a Content-Disposition header and on
every file system.
"""

from __future__ import annotations

import re

from app.viewstate import ViewState, fixes_param
from mmu_model import ScenarioInfo

__all__ = ["content_disposition", "custom_description", "export_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def _fixes(fixes: frozenset[str]) -> str:
    return fixes_param(fixes).replace(",", "+")


def export_name(state: ViewState, step: int | None = None, *, per_run: bool = False) -> str:
    """E.g. teaching-small_unlink-children-zap+flood-detection_action-step7 (no extension).

    `per_run`: the file is the same at every step (the per-boot CSV): no step in the name.
    A compare view names both sets, baseline first: ..._A_vs_B_...
    """
    source = f"trace-{state.trace[:12]}" if state.trace else state.scenario_name
    if state.params:
        source += "-custom"
    fixes = _fixes(state.fix_set)
    if state.compare:
        fixes = f"{_fixes(state.base_set)}_vs_{fixes}"
    parts = [source, fixes]
    if not per_run:
        at = state.step if step is None else step
        parts.append(f"{state.grain}-step{at if at is not None else 0}")
    return _UNSAFE.sub("-", "_".join(parts))


def content_disposition(filename: str) -> str:
    """An attachment header for a name export_name() made (nothing in it needs quoting)."""
    return f'attachment; filename="{_UNSAFE.sub("-", filename)}"'


def custom_description(info: ScenarioInfo, params: tuple[tuple[str, str], ...]) -> str:
    """The scenario's own description, or, with spec fields changed from the built-in's
    values, "custom: ..." naming each changed field and its value."""
    if not params:
        return info.description
    changed = ", ".join(f"{name} = {value}" for name, value in params)
    return f"custom: {changed} (based on {info.name}, whose other values are kept)."
