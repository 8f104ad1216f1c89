"""A finished run: final numbers, per-boot series and (when recorded) the seekable timeline."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field, fields
from typing import Any, Literal

from .exceptions import MmuModelError, RunFormatError
from .record import EventRecord
from .run_format import pack_sections, unpack_sections
from .scenario import ScenarioSpec
from .snapshot import (
    ActionView,
    EventView,
    Grain,
    OrphanSummary,
    PageChanges,
    Snapshot,
    SpView,
    StepSummary,
)
from .timeline import MAX_ACTION_OPS, LivePages, PageCounts, StateChanges, Timeline

__all__ = ["BootStats", "Discrepancy", "ReplayReport", "Run"]


@dataclass(frozen=True, slots=True)
class BootStats:
    """State at the end of one L2 boot, and the hash-chain cost paid during it."""

    boot: int
    shadow_pages: int
    unsync: int
    orphans: int
    orphans_unsync: int
    rmap_entries: int
    hash_walked: int
    action_step: int


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """A trace line whose flood count differs from the model's (a finding, not an error)."""

    lineno: int
    action_step: int
    gfn: int
    index: int
    level: int
    trace_flood: int
    model_flood: int | None  # None: no valid shadow page of that level shadows the gfn

    def describe(self) -> str:
        model = "no shadow page" if self.model_flood is None else str(self.model_flood)
        return (f"line {self.lineno}: gfn {self.gfn:#x} entry {self.index} level {self.level}: "
                f"trace flood {self.trace_flood}, model {model}")


@dataclass(frozen=True, slots=True)
class ReplayReport:
    lines: int
    tables: int
    discrepancies: tuple[Discrepancy, ...]
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class Run:
    kind: Literal["simulate", "replay"]
    spec: ScenarioSpec | None
    fixes: tuple[str, ...]
    final_stats: dict[str, int]
    orphans: OrphanSummary
    n_events: int
    n_actions: int
    timeline: Timeline | None
    per_boot: list[BootStats] = field(default_factory=list)
    replay: ReplayReport | None = None
    default_step: int = 0
    hash_walked: int = 0

    def __post_init__(self) -> None:
        if self.timeline is not None:
            self.timeline.events.seal()  # recording is over: no first seek pays for it

    def _timeline(self) -> Timeline:
        if self.timeline is None:
            raise MmuModelError("this run was not recorded; run it with record=True")
        return self.timeline

    def last_step(self, grain: Grain = "action") -> int:
        return self.n_actions if grain == "action" else self.n_events

    def snapshot(self, step: int, grain: Grain = "action") -> Snapshot:
        return self._timeline().snapshot(step, grain)

    def convert_step(self, step: int, from_grain: Grain, to_grain: Grain) -> int:
        return self._timeline().convert_step(step, from_grain, to_grain)

    def event(self, index: int) -> EventView:
        return self._timeline().event(index)

    def action(self, index: int) -> ActionView:
        return self._timeline().action(index)

    def events(self, start: int, count: int) -> list[EventView]:
        timeline = self._timeline()
        end = min(start + max(count, 0), timeline.n_events)
        return [timeline.event(i) for i in range(max(start, 0), end)]

    def all_pages(self) -> list[tuple[int, int, int]]:
        """(id, level, l2_gfn) of every shadow page the run ever created."""
        return self._timeline().all_pages()

    def first_difference(self, other: Run) -> int | None:
        """First action step after which the two runs' counters differ (None: never)."""
        mine = self._timeline().action_counters()
        theirs = other._timeline().action_counters()
        for step, (a, b) in enumerate(zip(mine, theirs, strict=False), start=1):
            if a[:-1] != b[:-1]:  # the hash-walk tally is a cost, not state
                return step
        if self.n_actions != other.n_actions:
            return min(self.n_actions, other.n_actions) + 1
        return None

    # -- steps by what changed ------------------------------------------------------------
    def op_step(self, step: int, grain: Grain = "action") -> int:
        """Events applied once step `step` (in `grain`) is done."""
        return self._timeline().op_step(step, grain)

    def changed_pages(self, from_step: int, to_step: int, grain: Grain = "action",
                      also: Iterable[int] = ()) -> PageChanges:
        """The pages whose state differs between two steps (and those in `also`), as they
        are after each; costs the events between the steps, not the tree's size."""
        timeline = self._timeline()
        return timeline.changed_pages(timeline.op_step(from_step, grain),
                                      timeline.op_step(to_step, grain), also)

    def changed_states(self, from_step: int, to_step: int, grain: Grain = "action",
                       also: Iterable[int] = ()) -> StateChanges:
        """changed_pages() as the pages' raw states, their views built on demand."""
        timeline = self._timeline()
        return StateChanges(timeline, timeline.changed_states(
            timeline.op_step(from_step, grain), timeline.op_step(to_step, grain), also))

    def events_between(self, from_step: int, to_step: int, grain: Grain = "action") -> int:
        """How many events lie between the two steps (what moving between them costs)."""
        timeline = self._timeline()
        return abs(timeline.op_step(to_step, grain) - timeline.op_step(from_step, grain))

    def pages_at(self, step: int, grain: Grain = "action") -> tuple[SpView, ...]:
        """Every live page after the step (Snapshot.pages, without the rest)."""
        timeline = self._timeline()
        return timeline.pages_at(timeline.op_step(step, grain))

    def live_pages(self, step: int, grain: Grain = "action") -> LivePages:
        """Every live page after the step as its raw state, views built on demand
        (Timeline.live_pages): what pages_at() gives, without a view per page."""
        timeline = self._timeline()
        return timeline.live_pages(timeline.op_step(step, grain))

    def page_counts(self, step: int = 0, grain: Grain = "action") -> PageCounts:
        """The counts over every page after the step, to move along the run (PageCounts)."""
        timeline = self._timeline()
        return PageCounts(timeline, timeline.op_step(step, grain))

    def summary(self, step: int, grain: Grain, counts: PageCounts,
                max_ops: int = MAX_ACTION_OPS) -> StepSummary:
        """The step without its pages; `counts` is moved to the step first. Its action
        carries at most `max_ops` of its kernel operations (Timeline.summary)."""
        timeline = self._timeline()
        counts.move_to(timeline.op_step(step, grain))
        return timeline.summary(step, grain, counts, max_ops)

    # -- size and serialization -----------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes this run holds: its record (measured from its columns) and its small fields."""
        size = sys.getsizeof(self) + sum(sys.getsizeof(b) for b in self.per_boot)
        if self.timeline is not None:
            size += self.timeline.nbytes
        return size

    def to_bytes(self) -> bytes:
        """The run in the binary run format (run_format.py); Run.from_bytes() reads it back."""
        meta: dict[str, Any] = {
            "kind": self.kind,
            "spec": None if self.spec is None else _spec_fields(self.spec),
            "fixes": list(self.fixes), "final_stats": self.final_stats,
            "orphans": self.orphans.as_dict(), "n_events": self.n_events,
            "n_actions": self.n_actions, "per_boot": [astuple(b) for b in self.per_boot],
            "replay": None if self.replay is None else {
                "lines": self.replay.lines, "tables": self.replay.tables,
                "discrepancies": [astuple(d) for d in self.replay.discrepancies],
                "notes": list(self.replay.notes), "warnings": list(self.replay.warnings),
            },
            "default_step": self.default_step, "hash_walked": self.hash_walked,
            "record": None if self.timeline is None else self.timeline.events.tables(),
        }
        sections = {"meta": json.dumps(meta, separators=(",", ":")).encode()}
        if self.timeline is not None:
            sections.update(self.timeline.events.columns())
        return pack_sections(sections)

    @classmethod
    def from_bytes(cls, data: bytes) -> Run:
        """The run that to_bytes() wrote; RunFormatError for anything else."""
        sections = unpack_sections(data)
        try:
            meta = json.loads(bytes(sections["meta"]))
            timeline = None
            if meta["record"] is not None:
                timeline = Timeline.of_record(EventRecord.from_parts(meta["record"], sections))
            if timeline is not None and (timeline.n_events, timeline.n_actions) != (
                    meta["n_events"], meta["n_actions"]):
                raise RunFormatError("corrupt run record: its event columns do not hold "
                                     "the run's events and actions")
            replay = meta["replay"]
            return cls(
                kind=meta["kind"],
                spec=None if meta["spec"] is None else _spec_of(meta["spec"]),
                fixes=tuple(meta["fixes"]), final_stats=dict(meta["final_stats"]),
                orphans=OrphanSummary(**meta["orphans"]), n_events=meta["n_events"],
                n_actions=meta["n_actions"], timeline=timeline,
                per_boot=[BootStats(*row) for row in meta["per_boot"]],
                replay=None if replay is None else ReplayReport(
                    lines=replay["lines"], tables=replay["tables"],
                    discrepancies=tuple(Discrepancy(*d) for d in replay["discrepancies"]),
                    notes=tuple(replay["notes"]), warnings=tuple(replay["warnings"]),
                ),
                default_step=meta["default_step"], hash_walked=meta["hash_walked"],
            )
        except RunFormatError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, MmuModelError) as exc:
            raise RunFormatError(f"corrupt run record: {type(exc).__name__}: {exc}") from None


def _spec_fields(spec: ScenarioSpec) -> dict[str, Any]:
    out = {f.name: getattr(spec, f.name) for f in fields(spec)}
    out["fixes"] = sorted(spec.fixes)
    return out


def _spec_of(values: dict[str, Any]) -> ScenarioSpec:
    return ScenarioSpec(**{**values, "fixes": frozenset(values["fixes"])})
