"""Plain-English narration of recorded events, written for this project.

Each event kind (a kvmmmu tracepoint or a kernel function, or a guest action) has one
renderer; tests check that every kind the model can emit has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["ACTION_KINDS", "KERNEL_KINDS", "narrate"]

Describe = Callable[[int], str]
Args = Mapping[str, object]


def _i(args: Args, key: str) -> int:
    value = args.get(key)
    return value if isinstance(value, int) else 0


def _ids(args: Args, key: str) -> list[int]:
    value = args.get(key)
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, int)]
    return []


# Every shadow page of the nested-EPT MMU has guest_mode in its role (inherited from
# kvm_calc_shadow_ept_root_page_role() by kvm_mmu_child_role()); KVM_MMU_PAGE_PRINTK does
# not print it.
_GUEST_MODE_UNPRINTED = (
    "Its role word has guest_mode set (bit 17), which the kvm_mmu_get_page tracepoint's "
    "role text does not print; trace-cmd shows only level, gpte size, quadrant, direct, "
    "access, invalid, nxe and ad."
)


def _get_page(a: Args, d: Describe) -> str:
    sp = d(_i(a, "sp"))
    if a.get("root"):
        how = "allocated" if a.get("created") else "found in the hash and reused"
        tail = f" {_GUEST_MODE_UNPRINTED}" if a.get("created") else ""
        return f"L0 {how} {sp} as the shadow root for L2's EPT pointer (root_count +1).{tail}"
    parent = d(_i(a, "parent"))
    if a.get("relinked_orphan"):
        return (
            f"The lookup hit {sp}, an orphan: L1 reused that table page, so L0 synced it and "
            f"linked it again at entry {_i(a, 'index')} of {parent}; it is no longer leaked."
        )
    if a.get("created"):
        return (
            f"L0 built {sp} to shadow the L1 table it found in the guest walk and linked it "
            f"at entry {_i(a, 'index')} of {parent}. {_GUEST_MODE_UNPRINTED}"
        )
    return (
        f"L0 found {sp} in the hash (write flooding count cleared) and linked it at entry "
        f"{_i(a, 'index')} of {parent}."
    )


def _set_spte(a: Args, d: Describe) -> str:
    size = {1: "4 KiB", 2: "2 MiB", 3: "1 GiB"}.get(_i(a, "level"), "")
    n = _i(a, "count")
    return (
        f"L0 installed {n} {size} leaf SPTE{'s' if n != 1 else ''} in {d(_i(a, 'sp'))}, "
        f"each with an rmap entry for the L1 page it maps."
    )


def _unsync(a: Args, d: Describe) -> str:
    return (
        f"L1 wrote the 4 KiB table shadowed by {d(_i(a, 'sp'))}. Instead of trapping every "
        f"write, L0 marked the page unsync and made it writable; its parents' unsync bitmaps "
        f"now lead to it (an orphan has no parent to record it)."
    )


def _sync(a: Args, d: Describe) -> str:
    if a.get("zapping"):
        return (
            f"{d(_i(a, 'sp'))} was unsync and is being zapped: kvm_unlink_unsync_page() "
            f"clears the flag (mmu_unsync -1), firing the kvm_mmu_sync_page tracepoint."
        )
    return (
        f"Walking the unsync bitmaps down from {d(_i(a, 'parent'))}, L0 re-write-protected "
        f"and synced {d(_i(a, 'sp'))}; stale SPTEs whose gpte changed were dropped."
    )


def _track_write(a: Args, d: Describe) -> str:
    gpa = _i(a, "gpa")
    return (
        f"L1's store to {gpa:#x} (entry {(gpa & 0xFFF) // 8} of table gfn {gpa >> 12:#x}) hit a "
        f"write-tracked page: L0 emulated it and ran kvm_mmu_track_write() (mmu_pte_write +1)."
    )


def _flooded(a: Args, d: Describe) -> str:
    before = _i(a, "flood_before")
    return (
        f"{d(_i(a, 'sp'))} has now taken {before + 1} trapped writes with no use in between "
        f"(write_flooding_count {before} -> {before + 1}): write flooding detected, so L0 "
        f"zaps the whole page, and with it every child still linked below it."
    )


def _misaligned(a: Args, d: Describe) -> str:
    return f"The write to {d(_i(a, 'sp'))} was misaligned, so L0 zapped the whole page."


def _zap_pte(a: Args, d: Describe) -> str:
    sp = d(_i(a, "sp"))
    head = (
        f"L0 zapped SPTE {_i(a, 'index')} of {sp} "
        f"(write_flooding_count {_i(a, 'flood_before')} -> {_i(a, 'flood')})."
    )
    child = a.get("child")
    if isinstance(child, int):
        c = d(child)
        if _i(a, "child_zapped"):
            return (
                f"{head} It was the last parent of {c}, so {c} was zapped right away: "
                f"kvm_mmu_track_write() passed its invalid_list (patch 1/2)."
            )
        if a.get("child_orphaned"):
            return (
                f"{head} It was the last parent of {c}. mmu_page_zap_pte() got no "
                f"invalid_list, so {c} is now an orphan: still valid, counted and hashed, "
                f"unreachable from any root, and nothing will sync or free it."
            )
        return f"{head} {c} is still linked from another parent."
    if a.get("was_leaf"):
        return f"{head} It was a leaf; its rmap entry is gone."
    return f"{head} The SPTE was not present, so nothing else changed."


def _prepare_zap(a: Args, d: Describe) -> str:
    sp = d(_i(a, "sp"))
    parts = [f"{sp} prepared for zapping"]
    if a.get("again"):
        return f"{sp}, an invalid root whose last reference is gone, is zapped for good."
    if _i(a, "leaves"):
        parts.append(f"{_i(a, 'leaves')} leaf SPTEs and their rmap entries dropped")
    parents = _ids(a, "parents")
    if parents:
        parts.append("unlinked from " + ", ".join(d(p) for p in parents))
    if a.get("was_unsync"):
        parts.append("unsync cleared (kvm_mmu_sync_page)")
    tail = (
        "it stays allocated as an invalid root until the vCPU drops it"
        if a.get("rooted")
        else "it waits on invalid_list for the commit"
    )
    return "; ".join(parts) + f"; {tail}."


def _first_six(ids: list[int], d: Describe) -> str:
    """The first six pages of `ids`, described, with " ..." when there are more."""
    return ", ".join(d(i) for i in ids[:6]) + (" ..." if len(ids) > 6 else "")


def _commit(a: Args, d: Describe) -> str:
    freed = _ids(a, "freed")
    return f"Remote TLB flush, then {len(freed)} shadow page(s) freed: {_first_six(freed, d)}."


def _flush(a: Args, d: Describe) -> str:
    return "A present SPTE was zapped, so L0 flushed remote TLBs."


def _zap_all_rmap_sptes(a: Args, d: Describe) -> str:
    n = _i(a, "gfns")
    return (
        f"Installing leaves in {d(_i(a, 'sp'))} made the rmap chain of {n} L1 page"
        f"{'s' if n != 1 else ''} longer than RMAP_RECYCLE_THRESHOLD (1000): __rmap_add() "
        f"ran kvm_zap_all_rmap_sptes(), clearing all {_i(a, 'sptes')} SPTEs in those chains "
        f"(stale leaves of leaked pages included) and flushing remote TLBs once per page. "
        f"The shadow pages themselves stay."
    )


def _unprotect(a: Args, d: Describe) -> str:
    zapped = _ids(a, "zapped")
    return (
        f"L1 cleared the page at gfn {_i(a, 'gfn'):#x} with rep stos, a write L0 traps since "
        f"it shadows that page as a table. The emulator does not count rep stos as a "
        f"page-table write, so __kvm_mmu_unprotect_gfn_and_retry() zapped every shadow page "
        f"of the gfn ({_first_six(zapped, d)}) "
        f"and let L1 retry the store natively: L1 reusing a freed table page reclaims what "
        f"L0 kept for it."
    )


def _zap_oldest(a: Args, d: Describe) -> str:
    return (
        f"Fewer than 5 pages left under the quota: L0 recycled the oldest pages, orphans "
        f"or not, until their nr_zapped reached {_i(a, 'total')} for a target of "
        f"{_i(a, 'nr_to_zap')} (mmu_recycled +{_i(a, 'total')}). Each page counts itself, "
        f"its unsync pages and its direct children only (kvm_mmu_prepare_zap_page() returns "
        f"bool), so the commit may free more pages than that."
    )


def _zap_all_fast(a: Args, d: Describe) -> str:
    return (
        f"kvm_mmu_zap_all_fast: mmu_valid_gen flipped to {_i(a, 'mmu_valid_gen')}, making "
        f"all {_i(a, 'used_pages')} shadow pages obsolete; they are all zapped, orphans too."
    )


def _free_roots(a: Args, d: Describe) -> str:
    roots = _ids(a, "roots")
    if not roots:
        return "No shadow roots to drop."
    return (
        "L0 dropped its references to shadow root(s) "
        + ", ".join(d(r) for r in roots)
        + "; a valid root left with no reference stays allocated (an ex-root)."
    )


def _new_pgd(a: Args, d: Describe) -> str:
    if a.get("reused"):
        return f"L0 switched to the cached shadow root for EPTP gfn {_i(a, 'root_gfn'):#x}."
    return f"L0 switched L2 to a new shadow root for EPTP gfn {_i(a, 'root_gfn'):#x}."


def _writable(a: Args, d: Describe) -> str:
    return (
        f"L1's write to gfn {_i(a, 'gfn'):#x} faulted once in L0; no shadow page tracks the "
        f"gfn any more, so L0 made it writable and later writes are invisible to it."
    )


def _clear_flood(a: Args, d: Describe) -> str:
    cleared = _ids(a, "cleared")
    if not cleared:
        return "An L2 access walked this path; no flood counts needed clearing."
    return "An L2 access walked the path and cleared the flood counts of " + ", ".join(
        d(i) for i in cleared
    ) + "."


KERNEL_KINDS: dict[str, Callable[[Args, Describe], str]] = {
    "kvm_mmu_get_page": _get_page,
    "mmu_set_spte": _set_spte,
    "kvm_mmu_unsync_page": _unsync,
    "kvm_mmu_sync_page": _sync,
    "kvm_mmu_track_write": _track_write,
    "detect_write_flooding": _flooded,
    "detect_write_misaligned": _misaligned,
    "mmu_page_zap_pte": _zap_pte,
    "kvm_mmu_prepare_zap_page": _prepare_zap,
    "kvm_mmu_commit_zap_page": _commit,
    "kvm_flush_remote_tlbs": _flush,
    "kvm_mmu_zap_oldest_mmu_pages": _zap_oldest,
    "kvm_zap_all_rmap_sptes": _zap_all_rmap_sptes,
    "kvm_mmu_unprotect_gfn_and_retry": _unprotect,
    "kvm_mmu_zap_all_fast": _zap_all_fast,
    "kvm_mmu_free_roots": _free_roots,
    "kvm_mmu_new_pgd": _new_pgd,
    "make_spte_writable": _writable,
    "clear_sp_write_flooding_count": _clear_flood,
}


def _a_vm_entry(a: Args, d: Describe) -> str:
    return (
        f"L2 boot {_i(a, 'boot')}: L1 gives L2 an EPT root at gfn {_i(a, 'root_gfn'):#x} "
        f"and enters it; L0 needs a shadow root for it."
    )


def _a_touch(a: Args, d: Describe) -> str:
    what = "the rest of the pages in" if a.get("second") else "memory in"
    return (
        f"L2 touches {what} {_i(a, 'regions')} 2 MiB region(s) of GiB {_i(a, 'gib')}. L1 fills "
        f"in its EPT12 tables (stores into shadowed tables trap or unsync), then L0 handles "
        f"the EPT violations and builds shadow pages down to the leaves."
    )


def _a_new_eptp(a: Args, d: Describe) -> str:
    return (
        f"L1 invalidates L2's EPT root (e.g. a memslot change in L1) and gives L2 a fresh root "
        f"at gfn {_i(a, 'root_gfn'):#x}; the old tree waits to be torn down."
    )


def _a_invept(a: Args, d: Describe) -> str:
    eptp = a.get("eptp_gfn", -1)
    if isinstance(eptp, int) and eptp >= 0:
        what = (f"L1 flushes L2's TLB for one EPT context (INVEPT single-context, EPTP gfn "
                f"{eptp:#x}). L0 drops only the shadow roots for that EPTP, keeping the others "
                f"cached")
    else:
        what = "L1 flushes L2's TLB (INVEPT global). L0 drops all its shadow roots for L2"
    return what + (" and reloads the current one, syncing unsync pages reachable from it."
                   if a.get("reload") else ".")


def _a_zap_4k(a: Args, d: Describe) -> str:
    return (
        f"4 KiB pass: L1 zaps the {_i(a, 'entries')} present 4 KiB entries in the "
        f"{_i(a, 'tables')} PT page(s) under PD gfn {_i(a, 'gfn'):#x}. Each PT page's first "
        f"store unsyncs its shadow page; the rest go unseen, so L0's SPTEs go stale."
    )


_LEVEL_NAMES = {1: "PTE", 2: "PDE", 3: "PDPTE", 4: "PML4E", 5: "PML5E"}


def _a_zap_entry(a: Args, d: Describe) -> str:
    level = _i(a, "level")
    entry = _LEVEL_NAMES.get(level, "entry")
    why = (
        "freezes" if a.get("frozen") else f"zaps ({a.get('pass', '')} pass)"
    )
    return (
        f"L1 {why} {entry} {_i(a, 'index')} of its level-{level} table at gfn "
        f"{_i(a, 'gfn'):#x}, writing {_i(a, 'new'):#x}."
    )


def _a_freeze_run(a: Args, d: Describe) -> str:
    return (
        f"L1 writes the frozen marker into non-present entries {_i(a, 'first')}..{_i(a, 'last')}"
        f" of its level-{_i(a, 'level')} table at gfn {_i(a, 'gfn'):#x} (shared-mode teardown)."
    )


def _a_freeze_pt(a: Args, d: Describe) -> str:
    return (
        f"L1 writes the frozen marker into {_i(a, 'entries')} entries of its PT page at gfn "
        f"{_i(a, 'gfn'):#x} while removing it."
    )


def _a_l2_activity(a: Args, d: Describe) -> str:
    return (
        f"Between two of L1's writes, an L2 access walks from L0's current shadow root "
        f"towards table gfn {_i(a, 'gfn'):#x}, clearing flood counts on the way."
    )


def _a_replay_setup(a: Args, d: Describe) -> str:
    return (
        f"Replay set-up: L1's tables rebuilt from the trace's old values ({_i(a, 'tables')} "
        f"tables); L0 holds a shadow page for each, level-1 pages unsync."
    )


def _a_replay_write(a: Args, d: Describe) -> str:
    return (
        f"Trace line {_i(a, 'lineno')}: L1 writes {_i(a, 'new'):#x} to {_i(a, 'gpa'):#x} "
        f"(level {_i(a, 'level')}, trace flood {_i(a, 'flood')})."
    )


def _a_reuse_freed_pages(a: Args, d: Describe) -> str:
    return (
        f"L2 boot {_i(a, 'boot')}: L2's RAM is faulted in from L1's free lists, which hand "
        f"out the {_i(a, 'pages')} EPT table page(s) L1 freed since the last boot first. L1 "
        f"clears each (clear_page, rep stos): L0 traps the pages it still write-tracks and "
        f"zaps their shadow pages; unsync 4 KiB ones are mapped writable, so L0 sees nothing "
        f"and their leak stands."
    )


def _a_zap_all_fast(a: Args, d: Describe) -> str:
    return "L1 deletes or moves a memslot; L0 runs kvm_mmu_zap_all_fast()."


ACTION_KINDS: dict[str, Callable[[Args, Describe], str]] = {
    "l2_vm_entry": _a_vm_entry,
    "l2_touch": _a_touch,
    "l1_new_eptp": _a_new_eptp,
    "l1_invept": _a_invept,
    "l1_zap_4k": _a_zap_4k,
    "l1_zap_entry": _a_zap_entry,
    "l1_freeze_run": _a_freeze_run,
    "l1_freeze_pt": _a_freeze_pt,
    "l2_activity": _a_l2_activity,
    "replay_setup": _a_replay_setup,
    "replay_write": _a_replay_write,
    "memslot_change": _a_zap_all_fast,
    "l1_reuse_freed_pages": _a_reuse_freed_pages,
}


def narrate(kind: str, args: Args, describe: Describe) -> str:
    renderer = KERNEL_KINDS.get(kind) or ACTION_KINDS.get(kind)
    if renderer is None:
        raise KeyError(f"no narration for event kind {kind!r}")
    return renderer(args, describe)
