"""check_invariants(kvm): the model's WARN_ON_ONCE()s, run after every step in the tests.

Each returned string names one violated invariant; an empty list means the state is sound.
"""

from __future__ import annotations

from .constants import PG_LEVEL_1G, PG_LEVEL_2M, PG_LEVEL_4K, SPTE_ENT_PER_PAGE, hash_64
from .guest import NO_CHILD_TABLES, L1Guest, pool_state_problems
from .kvm import Kvm
from .page import EMPTY_SPT, EMPTY_UNSYNC_CHILD_BITMAP, KvmMmuPage
from .rmap import tally_of

__all__ = ["check_invariants"]


def _child_pages(sp: KvmMmuPage) -> list[KvmMmuPage]:
    return [child for _, child in sp.children()]


def _acyclic(kvm: Kvm) -> bool:
    color: dict[int, int] = {}
    for start in kvm.sps:
        if start.id in color:
            continue
        stack: list[tuple[KvmMmuPage, list[KvmMmuPage]]] = [(start, _child_pages(start))]
        color[start.id] = 1
        while stack:
            sp, todo = stack[-1]
            if not todo:
                color[sp.id] = 2
                stack.pop()
                continue
            child = todo.pop()
            state = color.get(child.id)
            if state == 1:
                return False
            if state is None:
                color[child.id] = 1
                stack.append((child, _child_pages(child)))
    return True


def _page_list_problems(kvm: Kvm) -> list[str]:
    """kvm.pages is every page not yet freed at its id's place, None where freed, nothing
    but None before pages_head, and n_sps counts it."""
    bad: list[str] = []
    pages = kvm.pages
    if any(sp is not None for sp in pages[:kvm.pages_head]):
        bad.append("kvm.pages holds a page before pages_head")
    for i, sp in enumerate(pages):
        if sp is not None and (sp.freed or sp.id != kvm.pages_base + i):
            bad.append(f"kvm.pages[{i}] holds sp #{sp.id} (freed: {sp.freed}), not the page "
                       f"of id {kvm.pages_base + i}")
    if pages and kvm.pages_base + len(pages) != kvm.next_sp_id:
        bad.append("kvm.pages does not end with the newest page")
    live = sum(1 for sp in pages if sp is not None)
    if live != kvm.n_sps:
        bad.append(f"n_sps is {kvm.n_sps} but kvm.pages holds {live} pages")
    return bad


def check_invariants(kvm: Kvm) -> list[str]:
    """Check that the shadow MMU state is internally consistent (see module docstring)."""
    if kvm.released:
        return ["the Kvm was released at the end of its run: there is nothing left to check"]
    bad: list[str] = []
    sps = kvm.sps
    unsync = accounted = indirect = 0
    leaves = {PG_LEVEL_4K: 0, PG_LEVEL_2M: 0, PG_LEVEL_1G: 0}
    tracked: dict[int, int] = {}
    rooted: dict[int, int] = {}
    for root in ([kvm.root] if kvm.root else []) + kvm.prev_roots:
        rooted[root.id] = rooted.get(root.id, 0) + 1
    orphans: set[KvmMmuPage] = set()
    for sp in sps:
        tag = f"sp #{sp.id}"
        if sp.freed:
            bad.append(f"{tag} is freed but still listed")
        for parent, index in sp.parent_ptes:
            if parent.spt[index] is not sp:
                bad.append(f"{tag}: parent_ptes names #{parent.id}[{index}], "
                           "which does not point here")
            if parent.freed or parent not in sps:
                bad.append(f"{tag}: parent #{parent.id} is freed")
        if len({(p.id, i) for p, i in sp.parent_ptes}) != len(sp.parent_ptes):
            bad.append(f"{tag}: duplicate parent_ptes entries")
        for index, child in sp.children():
            if (sp, index) not in child.parent_ptes:
                bad.append(f"{tag}[{index}] -> #{child.id} missing from the child's parent_ptes")
            if child.role.level != sp.role.level - 1:
                bad.append(f"{tag}[{index}] -> #{child.id}: child level is not one below")
            if sp.leaf_bitmap >> index & 1:
                bad.append(f"{tag}[{index}] is both a leaf and a non-leaf SPTE")
            if (child.unsync or child.unsync_children) and index not in sp.unsync_child_bitmap:
                bad.append(f"{tag}[{index}] leads to unsync #{child.id} but its bit is clear")
        if sp.unsync_children != len(sp.unsync_child_bitmap):
            bad.append(f"{tag}: unsync_children {sp.unsync_children} != bits set "
                       f"{len(sp.unsync_child_bitmap)}")
        if sp.unsync:
            unsync += 1
            if sp.role.level != PG_LEVEL_4K or sp.role.direct:
                bad.append(f"{tag}: unsync but not an indirect level-1 page")
            if sp.role.invalid:
                bad.append(f"{tag}: unsync and invalid")
        if sp.role.invalid:
            if sp.parent_ptes or sp.children() or sp.leaf_bitmap:
                bad.append(f"{tag}: invalid but still linked or holding SPTEs")
            if not sp.root_count:
                bad.append(f"{tag}: invalid with root_count 0 but never committed")
        else:
            if sp.role.has_gptes:
                indirect += 1
                if sp.role.level > PG_LEVEL_4K:
                    tracked[sp.gfn] = tracked.get(sp.gfn, 0) + 1
        if not (sp.role.invalid and not sp.root_count):
            accounted += 1
        if sp.root_count != rooted.get(sp.id, 0):
            bad.append(f"{tag}: root_count {sp.root_count} but {rooted.get(sp.id, 0)} root slots")
        if sp not in kvm.mmu_page_hash[hash_64(sp.gfn)]:
            bad.append(f"{tag}: missing from its hash bucket")
        if sp.n_leaves != sp.leaf_bitmap.bit_count():
            bad.append(f"{tag}: n_leaves {sp.n_leaves} but {sp.leaf_bitmap.bit_count()} leaves")
        if sp.leaf_bitmap:
            leaves[sp.role.level] = leaves.get(sp.role.level, 0) + sp.leaf_bitmap.bit_count()
        is_orphan = (not sp.role.invalid and not sp.root_count and not sp.parent_ptes
                     and sp.role.level < kvm.root_level)
        if is_orphan:
            orphans.add(sp)
        if is_orphan != sp.orphan:
            bad.append(f"{tag}: orphan flag {sp.orphan} but the links say {is_orphan}")
    for index, bucket in enumerate(kvm.mmu_page_hash):
        invalid = sum(1 for sp in bucket if sp.role.invalid)
        if invalid != kvm.mmu_page_hash_invalid[index]:
            bad.append(f"hash bucket {index}: {invalid} invalid pages, the count says "
                       f"{kvm.mmu_page_hash_invalid[index]}")
    stale = [sp.id for sp in sps if sp.mmu_valid_gen != kvm.mmu_valid_gen and not sp.role.invalid]
    if stale:
        bad.append(f"pages of an old mmu_valid_gen are still valid: {stale[:8]}")
    hashed = sum(len(b) for b in kvm.mmu_page_hash)
    if hashed != len(sps):
        bad.append(f"mmu_page_hash holds {hashed} pages, {len(sps)} are allocated")
    for bucket in kvm.mmu_page_hash:
        for sp in bucket:
            if sp not in kvm.gfn_sps.get(sp.gfn, []):
                bad.append(f"sp #{sp.id}: hashed but missing from gfn_sps")
    for gfn, chain in kvm.gfn_sps.items():
        bucket = kvm.mmu_page_hash[hash_64(gfn)]
        if [sp.id for sp in bucket if sp.gfn == gfn] != [sp.id for sp in chain]:
            bad.append(f"gfn {gfn:#x}: gfn_sps disagrees with the hash chain")
    with_leaves = 0
    for sp in sps:
        if not sp.leaf_bitmap:
            if sp.rmap_chunk is not None:
                bad.append(f"sp #{sp.id}: has no leaves but keeps an rmap chunk")
            continue
        with_leaves += 1
        chunk = kvm.rmaps.chunk_at(sp.role.level, sp.leaf_gfn_base)
        if chunk is None or sp not in chunk.pages:
            bad.append(f"sp #{sp.id}: has leaves but is missing from their rmap chunk")
        elif sp.rmap_chunk is not chunk:
            bad.append(f"sp #{sp.id}: rmap_chunk is not the chunk of its leaves")
    if sum(len(chunk.pages) for chunk in kvm.rmaps.chunks.values()) != with_leaves:
        bad.append("rmap chunks hold pages that have no leaves there")
    for key, chunk in kvm.rmaps.chunks.items():
        if chunk.tally is not None and chunk.tally != tally_of(chunk.pages):
            bad.append(f"rmap chunk {key:#x}: bitmap tally disagrees with its pages")
    bad.extend(_page_list_problems(kvm))
    checks = [
        ("mmu_unsync", kvm.stat.mmu_unsync, unsync),
        ("mmu_shadow_pages", kvm.stat.mmu_shadow_pages, accounted),
        ("indirect_shadow_pages", kvm.indirect_shadow_pages, indirect),
        ("pages_4k", kvm.stat.pages_4k, leaves[PG_LEVEL_4K]),
        ("pages_2m", kvm.stat.pages_2m, leaves[PG_LEVEL_2M]),
        ("pages_1g", kvm.stat.pages_1g, leaves[PG_LEVEL_1G]),
        ("rmap entries", kvm.rmaps.entries, sum(leaves.values())),
        ("orphans", kvm.n_orphans, len(orphans)),
        ("orphans_unsync", kvm.orphans_unsync,
         sum(1 for sp in orphans if sp.unsync)),
    ]
    for name, have, want in checks:
        if have != want:
            bad.append(f"{name} is {have} but the pages say {want}")
    if tracked != kvm.write_track:
        bad.append(f"write_track {kvm.write_track} != level>=2 pages per gfn {tracked}")
    if any(child is not None for child in EMPTY_SPT) or len(EMPTY_SPT) != SPTE_ENT_PER_PAGE \
            or EMPTY_UNSYNC_CHILD_BITMAP:
        bad.append("a level-1 page was given a child: the shared empty spt is not empty")
    if any(table is not None for table in NO_CHILD_TABLES):
        bad.append("an L1 PT was given a child table: the PTs' shared entry list is not empty")
    if not _acyclic(kvm):
        bad.append("the shadow page graph has a cycle")
    if isinstance(kvm.guest, L1Guest):
        bad.extend(pool_state_problems(kvm.guest))
    return bad
