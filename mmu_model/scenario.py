"""Scenario specs: small, validated, hashable descriptions of a nested workload.

A run is a pure function of its spec: the same spec always gives the same events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .constants import KVM_MEMSLOT_PAGES_TO_MMU_PAGES_RATIO, KVM_MIN_ALLOC_MMU_PAGES, L1_ALLOCATORS
from .exceptions import InvalidSpec, UnknownScenario
from .fixes import DEFAULT_FIXES, FIXES

__all__ = ["BUILTINS", "FieldInfo", "ScenarioInfo", "ScenarioSpec", "get_scenario",
           "list_scenarios"]

GIB_PAGES = 1 << 18


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    label: str
    help: str
    kind: Literal["int", "float", "choice", "optional-int"]
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


_FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("l2_mem_gib", "L2 memory (GiB)", "Guest-physical memory of L2; one PD per GiB.",
              "int", 1, 1024),
    FieldInfo("l1_mem_gib", "L1 memory (GiB)",
              "Memory of the L1 VM (its memslots); sets the default quota. Empty: L2 + 4.",
              "optional-int", 3, 4096),
    FieldInfo("pdes_per_pd", "Present PDEs per PD",
              "2 MiB regions L2 touches in each GiB; a value below 1 is a fraction of 512.",
              "float", 0.001, 512),
    FieldInfo("huge_share", "Share of 2 MiB leaves",
              "Share of the touched regions L1 maps with a 2 MiB EPT leaf instead of a PT.",
              "float", 0, 1),
    FieldInfo("ptes_per_pt", "Pages touched per PT", "4 KiB pages L2 touches per PT region.",
              "int", 1, 512),
    FieldInfo("ept_levels", "EPT levels", "4- or 5-level EPT in L1.", "choice",
              choices=("4", "5")),
    FieldInfo("order", "Zap order",
              "bottom-up: 4K, 2M, 1G, root passes (since 8ca983631f3c); top-down: 1G then "
              "root (CONFIG_KVM_PROVE_MMU).", "choice", choices=("bottom-up", "top-down")),
    FieldInfo("mode", "Zap mode",
              "shared: removed tables get all 512 entries frozen; exclusive: present ones only.",
              "choice", choices=("shared", "exclusive")),
    FieldInfo("root_zaps_per_boot", "Root zaps per L2 boot",
              "How many times L1 tears down a full EPT root during one L2 lifetime.",
              "int", 1, 16),
    FieldInfo("boots", "L2 boots", "Number of L2 lifetimes, one after another.", "int", 1,
              100_000),
    FieldInfo("flood_clear_prob", "Flood-count clear probability",
              "Chance that, between two of L1's writes to a table, an L2 access walks to it "
              "from the current shadow root (clearing flood counts on the way).",
              "float", 0, 1),
    FieldInfo("quota", "Shadow page quota",
              "n_max_mmu_pages; empty: L1 memory pages / 50, at least 64.",
              "optional-int", 64, 100_000_000),
    FieldInfo("l1_allocator", "L1 page allocator",
              "Where L1's freed EPT table pages go. lifo: Linux's per-CPU lists, most recently "
              "freed first, shared with L2's RAM, which takes them all at the next boot; "
              "lifo-tables: the same list for KVM's tables alone, so L1 reuses them as "
              "tables; uniform: a random free page for each table; never-reuse. A reused "
              "page is cleared first (rep stos), which zaps what L0 still shadows there if "
              "L0 write-tracks it.",
              "choice", choices=L1_ALLOCATORS),
    FieldInfo("l1_backing", "L0's backing of L1 memory",
              "The page size L0 maps L1's memory with. 4K: a 2 MiB EPT12 leaf is shadowed by "
              "a direct 4 KiB shadow page (FNAME(fetch)'s second loop), which zapping its "
              "PDE can orphan; 2M: by one 2 MiB SPTE.",
              "choice", choices=("2M", "4K")),
    FieldInfo("invept", "L1's INVEPT",
              "global: L1 flushes with INVEPT global (vmx_flush_tlb_all, its response to a "
              "KVM_REQ_TLB_FLUSH after it tears a root down) and L0 drops every shadow root; "
              "single-context: INVEPT for L2's current EPTP only (vmx_flush_tlb_current), "
              "and L0 drops only the roots for that EPTP.",
              "choice", choices=("global", "single-context")),
    FieldInfo("seed", "Random seed", "Seeds L1's table-page allocator and L2's choices.",
              "int", 0, 2**32 - 1),
)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    l2_mem_gib: int = 16
    l1_mem_gib: int | None = None
    pdes_per_pd: float = 3
    huge_share: float = 0.0
    ptes_per_pt: int = 512
    ept_levels: int = 5
    order: str = "bottom-up"
    mode: str = "shared"
    root_zaps_per_boot: int = 2
    boots: int = 1
    flood_clear_prob: float = 0.0
    quota: int | None = None
    l1_allocator: str = "lifo"
    l1_backing: str = "2M"
    invept: str = "global"
    seed: int = 1
    fixes: frozenset[str] = field(default=DEFAULT_FIXES)

    FIELDS: ClassVar[tuple[FieldInfo, ...]] = _FIELDS

    def __post_init__(self) -> None:
        for info in _FIELDS:
            value = getattr(self, info.name)
            if info.kind == "optional-int" and value is None:
                continue
            if info.kind == "choice":
                if str(value) not in info.choices:
                    raise InvalidSpec(info.name, f"must be one of {', '.join(info.choices)}, "
                                      f"got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidSpec(info.name, f"must be a number, got {value!r}")
            if info.kind in ("int", "optional-int") and not isinstance(value, int):
                raise InvalidSpec(info.name, f"must be a whole number, got {value!r}")
            if value != value or (info.min is not None and value < info.min) or (
                info.max is not None and value > info.max
            ):
                raise InvalidSpec(info.name, f"must be between {info.min:g} and {info.max:g}, "
                                  f"got {value!r}")
        if self.pdes_per_pd >= 1 and self.pdes_per_pd != int(self.pdes_per_pd):
            raise InvalidSpec("pdes_per_pd", "must be a whole number of PDEs (1..512) or a "
                              f"fraction below 1, got {self.pdes_per_pd!r}")
        if self.l1_mem_gib is not None and self.l1_mem_gib < self.l2_mem_gib + 2:
            raise InvalidSpec("l1_mem_gib", f"must be at least L2 memory + 2 GiB "
                              f"({self.l2_mem_gib + 2}), got {self.l1_mem_gib}")
        for name in self.fixes:
            if name not in FIXES:
                raise InvalidSpec("fixes", f"unknown fix {name!r}; known: {', '.join(FIXES)}")
        if self.estimated_shadow_pages > 600_000:
            raise InvalidSpec("l2_mem_gib", "this spec would build about "
                              f"{self.estimated_shadow_pages:,} shadow pages per root; the "
                              "model's limit is 600,000")

    # -- derived values ------------------------------------------------------------------------
    @property
    def regions_per_pd(self) -> int:
        if self.pdes_per_pd < 1:
            return max(1, round(self.pdes_per_pd * 512))
        return int(self.pdes_per_pd)

    @property
    def l1_gib(self) -> int:
        return self.l1_mem_gib if self.l1_mem_gib is not None else self.l2_mem_gib + 4

    @property
    def n_max_mmu_pages(self) -> int:
        """The quota: kvm_arch_commit_memory_region()'s default unless set explicitly."""
        if self.quota is not None:
            return self.quota
        return max(self.l1_gib * GIB_PAGES // KVM_MEMSLOT_PAGES_TO_MMU_PAGES_RATIO,
                   KVM_MIN_ALLOC_MMU_PAGES)

    @property
    def estimated_shadow_pages(self) -> int:
        """Shadow pages one fully built root needs (PT pages + tables above them)."""
        pts = round(self.regions_per_pd * (1 - self.huge_share))
        if self.l1_backing == "4K":  # one direct level-1 page per 2 MiB leaf as well
            pts = self.regions_per_pd
        return self.l2_mem_gib * (pts + 1) + 2 + self.ept_levels

    # -- conversions ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> ScenarioSpec:
        return dataclasses.replace(self, **changes)

    def to_mapping(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for info in _FIELDS:
            value = getattr(self, info.name)
            out[info.name] = "" if value is None else f"{value:g}" if isinstance(
                value, float) else str(value)
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: ScenarioSpec | None = None
                     ) -> ScenarioSpec:
        """Build a spec from strings (query strings, forms, CLI); unknown keys are ignored."""
        base = base or cls()
        changes: dict[str, Any] = {}
        for info in _FIELDS:
            if info.name not in data:
                continue
            raw = data[info.name]
            text = raw.strip() if isinstance(raw, str) else raw
            if info.kind == "optional-int" and text in ("", None, "default"):
                changes[info.name] = None
                continue
            try:
                if info.kind in ("int", "optional-int"):
                    changes[info.name] = int(text)
                elif info.kind == "float":
                    changes[info.name] = float(text)
                elif info.name == "ept_levels":
                    changes[info.name] = int(text)
                else:
                    changes[info.name] = str(text)
            except (TypeError, ValueError):
                kind = "a whole number" if "int" in info.kind else "a number"
                raise InvalidSpec(info.name, f"must be {kind}, got {raw!r}") from None
        if "fixes" in data:
            raw = data["fixes"]
            names = raw.split(",") if isinstance(raw, str) else list(raw)
            changes["fixes"] = frozenset(n.strip() for n in names if n.strip())
        return dataclasses.replace(base, **changes)


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    name: str
    title: str
    description: str
    kind: Literal["simulate", "replay"]
    spec: ScenarioSpec | None = None
    trace_file: str | None = None


_SEED_DENSITY = 3  # PDs in the seed's bottom-up trace show 2-3 present PDEs; 3 reaches the
#                    flood threshold like PD 0x167939 does.  Both seed traces freeze only
#                    present entries (PD 0x112fb5 is written at 83, 84, 468 with flood
#                    0, 1, 2), i.e. exclusive mode, so the boot loops use it too.

BUILTINS: dict[str, ScenarioInfo] = {
    info.name: info
    for info in (
        ScenarioInfo(
            "teaching-small", "Teaching: one PD, bottom-up",
            "A 1 GiB L2 with 16 PT pages under one PD (about 20 shadow pages). L1 tears the "
            "tree down bottom-up and the first unsync page is orphaned at step 7.",
            "simulate",
            ScenarioSpec(l2_mem_gib=1, pdes_per_pd=16, ptes_per_pt=8, ept_levels=4,
                         order="bottom-up", mode="exclusive", root_zaps_per_boot=2, boots=1,
                         seed=7),
        ),
        ScenarioInfo(
            "seed-bottom-up", "Seed trace: bottom-up zap",
            "The bottom-up kvm_mmu_track_write() trace from the patch thread, replayed.",
            "replay", trace_file="seed-bottom-up.trace",
        ),
        ScenarioInfo(
            "seed-top-down", "Seed trace: top-down zap",
            "The top-down (CONFIG_KVM_PROVE_MMU) trace from the patch thread, replayed.",
            "replay", trace_file="seed-top-down.trace",
        ),
        ScenarioInfo(
            "boot-loop-bottom-up", "100 L2 boots, bottom-up",
            "A 16 GiB L2 at the seed trace's density booted 100 times; orphans pile up by "
            "2 per GiB per root zap.",
            "simulate",
            ScenarioSpec(l2_mem_gib=16, pdes_per_pd=_SEED_DENSITY, boots=100,
                         order="bottom-up", mode="exclusive"),
        ),
        ScenarioInfo(
            "boot-loop-top-down", "100 L2 boots, top-down",
            "The same workload torn down top-down: 4 orphans per PDPT per root zap. (In "
            "shared mode the frozen marker floods each PD before its first present entry.)",
            "simulate",
            ScenarioSpec(l2_mem_gib=16, pdes_per_pd=_SEED_DENSITY, boots=100,
                         order="top-down", mode="exclusive"),
        ),
        ScenarioInfo(
            "populated-16g", "Fully populated 16 GiB L2",
            "Every 2 MiB region of a 16 GiB L2 mapped by a PT (8,192 PT shadow pages), one boot.",
            "simulate",
            ScenarioSpec(l2_mem_gib=16, pdes_per_pd=512, boots=1, ptes_per_pt=512),
        ),
        ScenarioInfo(
            "large-10k", "Large tree: about 10,000 shadow pages",
            "A 20 GiB L2 with every 2 MiB region behind a PT page, one root zap.",
            "simulate",
            ScenarioSpec(l2_mem_gib=20, pdes_per_pd=512, ptes_per_pt=16, boots=1,
                         root_zaps_per_boot=1, mode="exclusive"),
        ),
    )
}


def list_scenarios() -> list[ScenarioInfo]:
    return list(BUILTINS.values())


def get_scenario(name: str) -> ScenarioInfo:
    try:
        return BUILTINS[name]
    except KeyError:
        raise UnknownScenario(name, sorted(BUILTINS)) from None
