"""Fix toggles: each switches a real code path in the model (see mmu.py), not a filter.

The default set is mainline just before "KVM: x86/mmu: Plug an unsync shadow page leak".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .exceptions import UnknownFix

__all__ = ["DEFAULT_FIXES", "FIXES", "Fix", "FixSet", "resolve_fixes"]


@dataclass(frozen=True, slots=True)
class Fix:
    name: str
    title: str
    effect: str
    default: bool
    # Its place in the series (e.g. "1/2"); empty for code mainline had before the series.
    patch: str = ""


FIXES: dict[str, Fix] = {
    fix.name: fix
    for fix in (
        Fix(
            "track-write-zap",
            "Patch 1/2 of the series",
            "kvm_mmu_track_write() passes its invalid_list to mmu_page_zap_pte(), so a shadow "
            "page whose last parent SPTE an emulated L1 write zaps is zapped at once instead "
            "of being orphaned (needs unlink-children-zap, whose recursion it reuses).",
            False,
            patch="1/2",
        ),
        Fix(
            "unlink-children-zap",
            "Commit 2de4085cccea (2020)",
            "mmu_page_zap_pte() recursively zaps a guest_mode child left with no parent SPTE "
            "when the caller passes an invalid_list, as kvm_mmu_page_unlink_children() does "
            "when zapping the parent.",
            True,
        ),
        Fix(
            "flood-detection",
            "Write-flooding detection",
            "detect_write_flooding() zaps a level >= 2 shadow page on the third trapped write "
            "without an intervening use; turned off, L1 can orphan every child of a table.",
            True,
        ),
    )
}

DEFAULT_FIXES: frozenset[str] = frozenset(name for name, fix in FIXES.items() if fix.default)


@dataclass(frozen=True, slots=True)
class FixSet:
    track_write_zap: bool
    unlink_children_zap: bool
    flood_detection: bool

    @classmethod
    def from_names(cls, names: Iterable[str]) -> FixSet:
        active = set(names)
        for name in active:
            if name not in FIXES:
                raise UnknownFix(name, sorted(FIXES))
        return cls(
            track_write_zap="track-write-zap" in active,
            unlink_children_zap="unlink-children-zap" in active,
            flood_detection="flood-detection" in active,
        )

    @property
    def names(self) -> tuple[str, ...]:
        on = {
            "track-write-zap": self.track_write_zap,
            "unlink-children-zap": self.unlink_children_zap,
            "flood-detection": self.flood_detection,
        }
        return tuple(name for name in FIXES if on[name])


def resolve_fixes(
    enable: Iterable[str] = (), disable: Iterable[str] = (), base: Iterable[str] = DEFAULT_FIXES
) -> frozenset[str]:
    """The default set plus `enable` minus `disable`; unknown names raise UnknownFix."""
    names = set(base)
    for name in [*enable, *disable]:
        if name not in FIXES:
            raise UnknownFix(name, sorted(FIXES))
    names |= set(enable)
    names -= set(disable)
    return frozenset(names)
