"""What a fix set is in the kernel's history, and the set compare mode puts beside it.

Derived from the model's fix table (mmu_model.FIXES): the fixes on by default are mainline
just before the series "KVM: x86/mmu: Plug an unsync shadow page leak", and a fix with a
`patch` is that patch of the series. Any other combination is a custom fix set (a model
switch turned off, or a patch without what it needs).
"""

from __future__ import annotations

from collections.abc import Iterable

from mmu_model import DEFAULT_FIXES, FIXES

__all__ = ["MAINLINE", "TRACK_WRITE_ZAP", "counterpart", "history_name"]

MAINLINE = "mainline before the series"
CUSTOM = "custom fix set"
TRACK_WRITE_ZAP = "track-write-zap"


def history_name(fixes: Iterable[str]) -> str:
    """"mainline before the series", "with patch 1/2" (mainline plus patches of the series,
    in series order), or "custom fix set"."""
    active = frozenset(fixes)
    if active == DEFAULT_FIXES:
        return MAINLINE
    added = [name for name in FIXES if name in active - DEFAULT_FIXES]
    if active >= DEFAULT_FIXES and all(FIXES[name].patch for name in added):
        patches = sorted((FIXES[name].patch for name in added), key=_patch_number)
        return f"with patch{'es' if len(patches) > 1 else ''} {', '.join(patches)}"
    return CUSTOM


def _patch_number(patch: str) -> int:
    number = patch.partition("/")[0]
    return int(number) if number.isdigit() else 0


def counterpart(fixes: Iterable[str]) -> frozenset[str]:
    """The set to compare `fixes` with when it would be compared with itself: the same set
    with patch 1/2 (track-write-zap) toggled, the change the series is about."""
    return frozenset(fixes) ^ {TRACK_WRITE_ZAP}
