"""Replay a kvm_mmu_track_write() debug trace (the format of the patch thread).

1. Rebuild L1's tables from the ``old`` values: a present non-leaf entry of a level-N table
   names its child, a level N-1 table (bits 12..51).  A table whose parent the trace never
   reveals is hung under a known table one level up, at an index the trace never writes,
   and the report says so.
2. Give L0 a shadow page for each table, built by the model's own fault path, with
   level-1 pages unsync (L1 has been writing them natively).
3. Replay each line as an L1 store; where L0 traps it, compare the model's
   write_flooding_count before the write with the trace's ``flood``.  Differences are
   findings for the reviewer (L2 activity the trace does not show, writes it filtered
   out), not errors.
"""

from __future__ import annotations

import random

from .constants import EPT_PRESENT_MASK, PG_LEVEL_4K, SPTE_ENT_PER_PAGE
from .exceptions import TraceParseError
from .fixes import DEFAULT_FIXES, FixSet
from .guest import Ept12Table, L1Guest
from .kvm import Kvm
from .mmu import (
    kvm_mmu_get_shadow_page,
    kvm_mmu_load,
    kvm_unsync_page,
    link_shadow_page,
)
from .page import KvmMmuPage
from .page_track import l1_store
from .run import Discrepancy, ReplayReport, Run
from .timeline import Timeline
from .trace import ParsedTrace, TraceLine, parse_trace

__all__ = ["replay_parsed", "replay_trace"]

_SYNTHETIC_BASE = 0xF_FFF0_0000  # gfns for tables the trace implies but never names


def _build_tables(trace: ParsedTrace, l1: L1Guest) -> tuple[Ept12Table, list[str]]:
    notes: list[str] = []
    levels: dict[int, tuple[int, int]] = {}  # gfn -> (level, first line)
    parent_of: dict[int, int] = {}
    written: dict[int, set[int]] = {}

    def claim(gfn: int, level: int, lineno: int) -> Ept12Table:
        seen = levels.get(gfn)
        if seen is not None and seen[0] != level:
            raise TraceParseError(lineno, f"table gfn {gfn:#x} appears at level {level} here "
                                  f"and at level {seen[0]} on line {seen[1]}")
        levels.setdefault(gfn, (level, lineno))
        return l1.adopt_table(gfn, level)

    for line in trace.lines:
        table = claim(line.gfn, line.level, line.lineno)
        written.setdefault(line.gfn, set()).add(line.index)
        if line.level > PG_LEVEL_4K and line.old_present and not line.old_is_leaf:
            child = claim(line.old_child_gfn, line.level - 1, line.lineno)
            if child.gfn in parent_of and parent_of[child.gfn] != table.gfn:
                notes.append(f"line {line.lineno}: table {child.gfn:#x} already hangs under "
                             f"{parent_of[child.gfn]:#x}; the second parent is ignored")
                continue
            existing = table.children[line.index]
            if existing is not None and existing is not child:
                notes.append(f"line {line.lineno}: entry {line.index} of {table.gfn:#x} named "
                             f"{existing.gfn:#x} earlier; keeping the first")
                continue
            table.children[line.index] = child
            parent_of[child.gfn] = table.gfn

    top = max(t.level for t in l1.tables.values())
    synthetic = _SYNTHETIC_BASE

    def free_index(table: Ept12Table) -> int:
        used = {i for i, _ in table.child_tables()} | written.get(table.gfn, set())
        return next(i for i in range(SPTE_ENT_PER_PAGE) if i not in used)

    roots = [t for t in l1.tables.values() if t.level == top and t.gfn not in parent_of]
    for level in range(PG_LEVEL_4K, top):
        orphans = [t for t in list(l1.tables.values())
                   if t.level == level and t.gfn not in parent_of]
        for table in orphans:
            hosts = [t for t in l1.tables.values() if t.level == level + 1]
            if not hosts:
                host = l1.adopt_table(synthetic, level + 1)
                synthetic += 1
                notes.append(f"no level-{level + 1} table in the trace: made up {host.gfn:#x} "
                             f"to hold {table.gfn:#x}")
                if level + 1 == top:
                    roots.append(host)
            else:
                host = hosts[0]
            index = free_index(host)
            host.children[index] = table
            parent_of[table.gfn] = host.gfn
            notes.append(f"the trace never shows the parent of level-{level} table "
                         f"{table.gfn:#x}; it hangs under {host.gfn:#x} at entry {index}")
    root = roots[0]
    for extra in roots[1:]:
        notes.append(f"level-{top} table {extra.gfn:#x} has no parent either; only "
                     f"{root.gfn:#x} is used as L2's root")
    return root, notes


def _shadow(kvm: Kvm, table: Ept12Table, sp: KvmMmuPage, l2_gfn: int,
            unsync: list[KvmMmuPage]) -> None:
    for index, child_table in table.child_tables():
        child_l2 = l2_gfn + index * (1 << (9 * (table.level - 1)))
        child, created = kvm_mmu_get_shadow_page(kvm, child_table.gfn, sp.role.child(), child_l2)
        link_shadow_page(kvm, sp, index, child)
        kvm.emit("kvm_mmu_get_page", sp=child.id, created=created, parent=sp.id, index=index,
                 relinked_orphan=False)
        if child.role.level == PG_LEVEL_4K:
            unsync.append(child)
        else:
            _shadow(kvm, child_table, child, child_l2, unsync)


def replay_parsed(trace: ParsedTrace, *, fixes: frozenset[str] = DEFAULT_FIXES,
                  record: bool = True) -> Run:
    l1 = L1Guest(pool_lo=1, pool_hi=2, rng=random.Random(0))
    root_table, notes = _build_tables(trace, l1)
    fixset = FixSet.from_names(fixes)
    kvm = Kvm(fixes=fixset, n_max_mmu_pages=1 << 30, root_level=root_table.level, guest=l1)
    timeline = Timeline(kvm) if record else None
    kvm.recorder = timeline
    kvm.begin_action("replay_setup", tables=len(l1.tables))
    root = kvm_mmu_load(kvm, root_table.gfn)
    unsync: list[KvmMmuPage] = []
    _shadow(kvm, root_table, root, 0, unsync)
    for sp in unsync:
        kvm.enter("mmu_try_to_unsync_pages")
        kvm_unsync_page(kvm, sp)
        kvm.leave()
        kvm.l1_wp.discard(sp.gfn)
    discrepancies: list[Discrepancy] = []
    for line in trace.lines:
        discrepancies += _replay_line(kvm, l1, line)
    report = ReplayReport(lines=len(trace.lines), tables=len(l1.tables),
                          discrepancies=tuple(discrepancies), notes=tuple(notes),
                          warnings=trace.warnings)
    run = Run(
        kind="replay", spec=None, fixes=fixset.names, final_stats=kvm.stat.as_dict(),
        orphans=kvm.orphan_summary(),
        n_events=kvm.events_emitted, n_actions=kvm.actions_emitted, timeline=timeline,
        replay=report, default_step=1, hash_walked=kvm.hash_walked,
    )
    kvm.release()
    return run


def _replay_line(kvm: Kvm, l1: L1Guest, line: TraceLine) -> list[Discrepancy]:
    step = kvm.actions_emitted + 1
    kvm.begin_action("replay_write", lineno=line.lineno, gpa=line.gpa, new=line.new,
                     level=line.level, flood=line.flood)
    model = None
    trapped = bool(kvm.write_track.get(line.gfn))
    if trapped:
        for sp in kvm.mmu_page_hash_get(line.gfn):
            if sp.role.level == line.level:
                model = sp.write_flooding_count
                break
    table = l1.tables.get(line.gfn)
    if table is not None and not line.new & EPT_PRESENT_MASK:
        table.children[line.index] = None
        table.leaf_bitmap &= ~(1 << line.index)
    l1_store(kvm, line.gfn, line.index, line.new)
    if model == line.flood:
        return []
    return [Discrepancy(line.lineno, step, line.gfn, line.index, line.level, line.flood, model)]


def replay_trace(text: str, *, fixes: frozenset[str] = DEFAULT_FIXES, lenient: bool = False,
                 record: bool = True) -> Run:
    """Parse and replay a trace; see the module docstring."""
    return replay_parsed(parse_trace(text, lenient=lenient), fixes=fixes, record=record)
