"""What the outside sees of the model at one step: immutable views, plain data.

The web layer and the CLI read only these types; they never touch Kvm or KvmMmuPage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = ["ActionView", "EventView", "Grain", "OrphanSummary", "PageChanges", "Snapshot",
           "SpStatus", "SpView", "StepSummary", "page_status"]

Grain = Literal["action", "op"]
SpStatus = Literal["root", "ex-root", "synced", "unsync", "orphan", "orphan-unsync", "zapped"]


def page_status(ghost: bool, invalid: bool, root_count: int, orphan: bool, unsync: bool,
                linked: bool) -> SpStatus:
    """What the tree draws a page as (SpView.status), from its flags and whether it has a
    parent SPTE."""
    if ghost or invalid:
        return "zapped"
    if root_count:
        return "root"
    if orphan:
        return "orphan-unsync" if unsync else "orphan"
    if not linked:
        return "ex-root"
    return "unsync" if unsync else "synced"


@dataclass(frozen=True, slots=True)
class SpView:
    """One shadow page as it is after the step (or, for a ghost, just before it was freed)."""

    id: int
    gfn: int
    level: int
    role_word: int
    role: str
    direct: bool
    guest_mode: bool
    invalid: bool
    unsync: bool
    unsync_children: int
    write_flooding_count: int
    root_count: int
    parents: tuple[tuple[int, int], ...]  # (parent sp id, SPTE index in the parent)
    leaf_sptes: int  # present leaf SPTEs; each has one rmap entry
    orphan: bool
    l2_gfn: int  # start of the L2 guest-physical range the page covers (layout key)
    ghost: bool = False  # freed during this step; drawn once more, faded

    @property
    def rmap_entries(self) -> int:
        return self.leaf_sptes

    @property
    def status(self) -> SpStatus:
        return page_status(self.ghost, self.invalid, self.root_count, self.orphan,
                           self.unsync, bool(self.parents))


@dataclass(frozen=True, slots=True)
class OrphanSummary:
    """Orphans (valid non-root pages with no parent SPTE) and, wider, the unreachable pages:
    valid pages that no walk from a valid root the vCPU holds (root_count > 0) reaches, i.e.
    the orphans, the ex-roots and every page still linked below either.  The hardware can
    use none of them; each still costs its hash-chain slot, its quota share and its rmaps.
    ``unreachable`` is None until derived from the pages (see with_reachability())."""

    total: int
    unsync: int
    by_level: dict[str, int]
    unreachable: int | None = None
    unreachable_unsync: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "unsync": self.unsync, "by_level": dict(self.by_level),
                "unreachable": self.unreachable, "unreachable_unsync": self.unreachable_unsync}

    def with_reachability(self, pages: tuple[SpView, ...]) -> OrphanSummary:
        """This summary with the unreachable counts of `pages` (one step's live pages)."""
        children: dict[int, list[int]] = {}
        for page in pages:
            for parent, _ in page.parents:
                children.setdefault(parent, []).append(page.id)
        seen: set[int] = set()
        stack = [p.id for p in pages if p.root_count and not p.invalid]
        while stack:
            sp_id = stack.pop()
            if sp_id not in seen:
                seen.add(sp_id)
                stack.extend(children.get(sp_id, ()))
        lost = [p for p in pages if not p.invalid and p.id not in seen]
        return replace(self, unreachable=len(lost),
                       unreachable_unsync=sum(1 for p in lost if p.unsync))


@dataclass(frozen=True, slots=True)
class EventView:
    """One recorded event: a guest action header or a kernel operation inside it."""

    index: int  # 0-based position in the run's event list; op step = index + 1
    kind: str
    is_action: bool
    action_index: int
    call_path: tuple[str, ...]
    args: dict[str, object]
    narration: str
    touched: tuple[int, ...]
    created: tuple[int, ...]
    freed: tuple[int, ...]
    stat_deltas: dict[str, int]


@dataclass(frozen=True, slots=True)
class ActionView:
    """One guest action (L2 fault, L1 write, root switch, ...) with its kernel operations."""

    index: int  # 0-based; action step = index + 1
    kind: str
    narration: str
    first_event: int
    last_event: int  # inclusive
    boot: int
    ops: tuple[EventView, ...] = field(default=())  # the first MAX_ACTION_OPS of them
    n_ops: int = 0  # all kernel operations in the action

    @property
    def more_ops(self) -> int:
        return self.n_ops - len(self.ops)


@dataclass(frozen=True, slots=True)
class Snapshot:
    step: int
    grain: Grain
    last_step: int
    pages: tuple[SpView, ...]  # live pages (including zapped ones awaiting commit)
    ghosts: tuple[SpView, ...]  # pages freed during this step
    changed: frozenset[int]  # ids touched by this step
    created: frozenset[int]
    stats: dict[str, int]
    stat_deltas: dict[str, int]
    orphans: OrphanSummary
    event: EventView | None  # op grain: the event; action grain: the action's header event
    action: ActionView | None

    def __post_init__(self) -> None:
        if self.orphans.unreachable is None:  # derived here, from this step's pages
            object.__setattr__(self, "orphans", self.orphans.with_reachability(self.pages))


@dataclass(frozen=True, slots=True)
class StepSummary:
    """A step without its pages: what it did, and the counts over every live page after it.

    Snapshot's fields except `pages`, whose number is n_pages; `orphans` carries the
    unreachable counts (Timeline.summary() takes them from a PageCounts moved to the step,
    so a step costs what changed since the counts' last step, not the tree's size).
    """

    step: int
    grain: Grain
    last_step: int
    op_step: int  # events applied once the step is done
    n_pages: int  # live pages, as len(Snapshot.pages)
    ghosts: tuple[SpView, ...]
    changed: frozenset[int]
    created: frozenset[int]
    stats: dict[str, int]
    stat_deltas: dict[str, int]
    orphans: OrphanSummary
    event: EventView | None
    action: ActionView | None


@dataclass(frozen=True, slots=True)
class PageChanges:
    """Pages whose state differs between two steps (and any asked for besides): their views
    at the first step and at the second; a page not live at a step is absent from its
    dict."""

    before: dict[int, SpView]
    after: dict[int, SpView]
    ids: frozenset[int]  # every page reported (in either dict or neither)
