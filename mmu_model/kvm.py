"""struct kvm / struct kvm_arch state of L0 for one VM (L1), with one vCPU running L2.

Only what the shadow MMU needs: the shadow page lists, the 4096-bucket hash, the quota, the
per-gfn write tracking, the VM stats, and the vCPU's shadow roots (current + prev_roots).
The model also keeps, as bookkeeping with no kernel twin, which pages are orphans (sp.orphan
and their count, kept current on every parent/root/validity change and re-derived by
check_invariants()), the number of hash-chain entries walked, and the hooks that turn kernel
operations into recorded events.
"""

from __future__ import annotations

from typing import Any

from .constants import KVM_NUM_MMU_PAGES, hash_64
from .fixes import FixSet
from .page import KvmMmuPage
from .rmap import Rmaps
from .snapshot import OrphanSummary
from .stats import KvmVmStat

__all__ = ["EventKind", "GuestMemory", "Kvm", "Recorder"]


def _remove_from_chain(chain: list[KvmMmuPage], sp: KvmMmuPage, old: bool) -> None:
    """chain.remove(sp), searching from the oldest end if `old`, else from the newest.

    A chain is in age order.  Most pages are freed soon after they were made, while
    kvm_mmu_zap_oldest_mmu_pages() frees the oldest ones, which sit at the other end:
    searching from the nearer end keeps the search from touching (and missing the cache
    on) every leaked page of a long chain.
    """
    if old:
        for i in range(len(chain)):
            if chain[i] is sp:
                del chain[i]
                return
    else:
        for i in range(len(chain) - 1, -1, -1):
            if chain[i] is sp:
                del chain[i]
                return
    raise ValueError(f"{sp!r} is not in its hash chain")


class GuestMemory:
    """What L0 can read of L1's memory: the current value of one EPT12 entry.

    A base class rather than a Protocol so that compiled code calls the methods directly.
    """

    def read_gpte(self, gfn: int, index: int) -> int:
        raise NotImplementedError

    def present_leaves(self, gfn: int, leaf_gfn_base: int, level: int) -> int:
        """Bitmap of entries of table `gfn` that are present leaves mapping, for entry i,
        L1 gfn ``leaf_gfn_base + i * frames-per-entry`` (what FNAME(sync_spte) re-reads)."""
        raise NotImplementedError


_EVENT_KINDS: list[EventKind] = []


class EventKind:
    """An event's kind and its argument names, declared once beside the code that emits
    it, so that Kvm.event() takes the values positionally: a recorded run then builds no
    keyword dict per event, and the recorder finds the event's shape by `id`."""

    __slots__ = ("args", "id", "name")

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.args: tuple[str, ...] = args
        self.id = len(_EVENT_KINDS)
        _EVENT_KINDS.append(self)

    def __repr__(self) -> str:
        return f"EventKind({self.name!r}, {', '.join(map(repr, self.args))})"


class Recorder:
    """What Kvm hands every event to (timeline.Timeline; tests use simpler ones).

    A base class rather than a Protocol so that compiled code calls it directly.  `args`
    is the event's own keyword dict: a recorder may keep it, nobody else holds it.
    """

    def record(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        raise NotImplementedError

    def begin_action(self, kvm: Kvm, kind: str, args: dict[str, Any]) -> None:
        raise NotImplementedError

    def record_values(self, kvm: Kvm, kind: EventKind, values: tuple[object, ...],
                      action: bool) -> None:
        """An event given positionally (Kvm.event(), Kvm.action()): by default the same as
        record() (begin_action() if `action`) with the keyword dict built here."""
        args = dict(zip(kind.args, values, strict=True))
        if action:
            self.begin_action(kvm, kind.name, args)
        else:
            self.record(kvm, kind.name, args)

    def record_ints(self, kvm: Kvm, kind: EventKind, a: int, b: int, c: int) -> None:
        """An event of one to three int arguments given as ints (Kvm.event_ints()): by
        default record_values() with the first len(kind.args) of them."""
        self.record_values(kvm, kind, (a, b, c)[:len(kind.args)], False)


class Kvm:
    def __init__(
        self,
        *,
        fixes: FixSet,
        n_max_mmu_pages: int,
        root_level: int,
        guest: GuestMemory,
        recorder: Recorder | None = None,
    ) -> None:
        # kvm->arch
        # kvm->arch.active_mmu_pages and the model's set of pages not yet freed, as one list
        # in age order: sp ids are handed out in allocation order, so pages[i] is the page
        # with id pages_base + i, or None once it is freed.  A page is on active_mmu_pages
        # (the property below) from its allocation until it is zapped (role.invalid).  A
        # list of pointers rather than dicts keyed by page: a long boot loop holds 100,000
        # pages, and three such dicts of 10 MiB each (these two and the orphans) made every
        # page's zap a handful of cache misses.
        self.pages: list[KvmMmuPage | None] = []
        self.pages_base = 1
        self.pages_head = 0  # pages[:pages_head] are all None (freed)
        self.n_sps = 0  # pages not yet freed
        # Each chain is oldest first: hlist_add_head() puts the newest at the head, so a
        # walk of a chain runs from the end.
        self.mmu_page_hash: list[list[KvmMmuPage]] = [[] for _ in range(KVM_NUM_MMU_PAGES)]
        # Per bucket, how many of its pages are invalid (zapped, awaiting their free), so a
        # lookup of a gfn with no page in the bucket counts its collisions without a walk.
        self.mmu_page_hash_invalid: list[int] = [0] * KVM_NUM_MMU_PAGES
        self.indirect_shadow_pages = 0
        self.n_max_mmu_pages = n_max_mmu_pages
        self.mmu_valid_gen = 0
        self.write_track: dict[int, int] = {}  # gfn -> count (page_track.c gfn_write_track)
        self.tdp_enabled = True
        self.stat = KvmVmStat()
        self.rmaps = Rmaps()
        # L0's own TDP mapping of L1 memory: gfns currently mapped read-only (write-protected
        # for a shadowed table, until a write fault makes them writable again).
        self.l1_wp: set[int] = set()
        # The vCPU's guest_mmu roots: the current one and the prev_roots cache (MRU first).
        self.root: KvmMmuPage | None = None
        self.prev_roots: list[KvmMmuPage] = []
        self.root_level = root_level
        # The largest page L0 maps L1's memory with (host_pfn_mapping_level()): 2 for
        # 2 MiB, 1 for 4 KiB, when FNAME(fetch) builds direct pages under a 2 MiB leaf.
        self.host_mapping_level = 2
        self.root_zapped = False  # KVM_REQ_MMU_FREE_OBSOLETE_ROOTS pending
        # CPUs a KVM_REQ_TLB_FLUSH would IPI: vCPUs in guest mode other than the
        # requester's (see mmu.kvm_flush_remote_tlbs()).
        self.ipi_targets = 0
        self.fixes = fixes
        self.guest = guest
        # Model bookkeeping.
        # The same pages as mmu_page_hash, per gfn and in chain order, so that a walk of
        # one gfn's chain visits only that gfn's pages (the cost is still charged in full
        # to hash_walked).
        self.gfn_sps: dict[int, list[KvmMmuPage]] = {}
        self.n_orphans = 0  # pages with sp.orphan set (see the orphans property)
        self.orphans_unsync = 0
        self.hash_walked = 0
        self.next_sp_id = 1
        # The pages touched since the last event, each once, in first-touch order: the first
        # n_touched of touched_pages (a page's touched_at says it is listed: the event count
        # when it was added).  The list is reused from one event to the next (clearing it
        # would free its storage, and the next touch allocate it again, every event).
        self.touched_pages: list[KvmMmuPage] = []
        self.n_touched = 0
        # The kernel call path (see enter()), as a node of the trie of the paths entered so
        # far: a recorder reads the whole path as one int.  Node 0 is the empty path.
        self.path_node = 0
        self.path_parent: list[int] = [0]
        self.path_children: list[dict[str, int]] = [{}]
        self.path_tuples: list[tuple[str, ...]] = [()]
        # Per node, the function last entered from it and the node that led to.
        self.path_last_function: list[str] = [""]
        self.path_last_child: list[int] = [0]
        self.events_emitted = 0
        self.actions_emitted = 0
        self.recorder = recorder
        self.released = False  # see release()

    # -- bookkeeping -------------------------------------------------------------------
    def touch(self, sp: KvmMmuPage) -> None:
        """`sp` changed: the recorder stores its new state with the next event."""
        if self.recorder is not None and sp.touched_at != self.events_emitted:
            sp.touched_at = self.events_emitted
            n = self.n_touched
            pages = self.touched_pages
            if n < len(pages):
                pages[n] = sp
            else:
                pages.append(sp)
            self.n_touched = n + 1

    @property
    def touched(self) -> list[KvmMmuPage]:
        """The pages touched since the last event, each once, in first-touch order."""
        return self.touched_pages[:self.n_touched]

    def update_orphan(self, sp: KvmMmuPage) -> None:
        """Re-derive whether `sp` is an orphan after a change to its links or validity."""
        now = (
            not sp.freed
            and not sp.role.invalid
            and sp.root_count == 0
            and not sp.parent_ptes
            and sp.role.level < self.root_level
        )
        if now != sp.orphan:
            sp.orphan = now
            if now:
                self.n_orphans += 1
                if sp.unsync:
                    self.orphans_unsync += 1
            else:
                self.n_orphans -= 1
                if sp.unsync:
                    self.orphans_unsync -= 1
        self.touch(sp)

    def set_unsync(self, sp: KvmMmuPage, unsync: bool) -> None:
        if sp.orphan and sp.unsync != unsync:
            self.orphans_unsync += 1 if unsync else -1
        sp.unsync = unsync
        self.touch(sp)

    def release(self) -> None:
        """The run is over and the VM goes away: every page lets go of its rmap chunk.

        Pages that still have leaves and their chunks refer to each other; breaking that
        lets reference counting free the whole model, so a finished run leaves nothing for
        the cyclic collector.  Nothing may use the Kvm afterwards.
        """
        self.rmaps.release()
        self.touched_pages.clear()
        self.n_touched = 0
        self.released = True

    def enter(self, function: str) -> None:
        """A modelled kernel function starts: events record the call path they happen in.

        Nothing reads the path unless a recorder is attached, so it is kept only then.
        (A second remembered function per node, for callers that alternate two, saved
        nothing measurable recording populated-16g, whose 66k misses go to the dict.)
        """
        if self.recorder is not None:
            at = self.path_node
            if function is self.path_last_function[at]:  # the usual case: one str object
                self.path_node = self.path_last_child[at]
                return
            node = self.path_children[at].get(function)
            if node is None:
                node = len(self.path_parent)
                self.path_parent.append(at)
                self.path_children.append({})
                self.path_tuples.append((*self.path_tuples[at], function))
                self.path_last_function.append("")
                self.path_last_child.append(0)
                self.path_children[at][function] = node
            self.path_last_function[at] = function
            self.path_last_child[at] = node
            self.path_node = node

    def leave(self) -> None:
        if self.recorder is not None:
            if not self.path_node:
                raise IndexError("Kvm.leave() without a matching enter()")
            self.path_node = self.path_parent[self.path_node]

    @property
    def path(self) -> tuple[str, ...]:
        """The kernel call path, outermost first (empty unless recording)."""
        return self.path_tuples[self.path_node]

    def emit(self, kind: str, **args: Any) -> None:
        """One kernel operation finished: everything touched since the last one is its diff."""
        self.events_emitted += 1
        if self.recorder is not None:
            self.recorder.record(self, kind, args)
        self.n_touched = 0

    def event(self, kind: EventKind, values: tuple[object, ...]) -> None:
        """emit() with the arguments given positionally, in kind.args order."""
        self.events_emitted += 1
        if self.recorder is not None:
            self.recorder.record_values(self, kind, values, False)
        self.n_touched = 0

    def event_ints(self, kind: EventKind, a: int, b: int = 0, c: int = 0) -> None:
        """event() for a kind of one to three int arguments (not bools: those are recorded
        as themselves), given as ints: a recorded run builds no tuple for them."""
        self.events_emitted += 1
        if self.recorder is not None:
            self.recorder.record_ints(self, kind, a, b, c)
            self.n_touched = 0

    def action(self, kind: EventKind, values: tuple[object, ...]) -> None:
        """begin_action() with the arguments given positionally, in kind.args order."""
        self.events_emitted += 1
        self.actions_emitted += 1
        if self.recorder is not None:
            self.recorder.record_values(self, kind, values, True)
        self.n_touched = 0

    @property
    def recording(self) -> bool:
        """Whether events are recorded; hot call sites build event arguments only then."""
        return self.recorder is not None

    def count_event(self) -> None:
        """An event nothing records: emit() without building its arguments."""
        self.events_emitted += 1

    def count_action(self) -> None:
        """A guest action nothing records: begin_action() without building its arguments."""
        self.events_emitted += 1
        self.actions_emitted += 1

    def begin_action(self, kind: str, **args: Any) -> None:
        """A guest action (L2 fault, L1 write, ...) starts; it is recorded as an event too."""
        self.events_emitted += 1
        self.actions_emitted += 1
        if self.recorder is not None:
            self.recorder.begin_action(self, kind, args)
        self.n_touched = 0

    def page_added(self, sp: KvmMmuPage) -> None:
        """list_add(&sp->link, &kvm->arch.active_mmu_pages), and the page is allocated."""
        pages = self.pages
        head = self.pages_head
        if head > 4096 and head > len(pages) >> 1:  # drop the freed front: a memmove
            del pages[:head]
            self.pages_base += head
            self.pages_head = 0
        if sp.id != self.pages_base + len(pages):
            raise ValueError(f"{sp!r} is not the next page by id")
        pages.append(sp)
        self.n_sps += 1

    def page_freed(self, sp: KvmMmuPage) -> None:
        """Bookkeeping of a freed page (kvm_mmu_free_shadow_page() frees it, after
        kvm_mmu_commit_zap_page()): it leaves the list of allocated pages."""
        pages = self.pages
        i = sp.id - self.pages_base
        if pages[i] is not sp:
            raise ValueError(f"{sp!r} is not allocated")
        pages[i] = None
        self.n_sps -= 1
        if i == self.pages_head:
            n = len(pages)
            while i < n and pages[i] is None:
                i += 1
            self.pages_head = i

    def live_pages(self) -> list[KvmMmuPage]:
        """Every page not yet freed, oldest first."""
        return [sp for sp in self.pages[self.pages_head:] if sp is not None]

    @property
    def sps(self) -> dict[KvmMmuPage, None]:
        """Every page not yet freed, oldest first (an ordered set, built on each call)."""
        return dict.fromkeys(self.live_pages())

    @property
    def active_mmu_pages(self) -> dict[KvmMmuPage, None]:
        """kvm->arch.active_mmu_pages, oldest first: the pages not zapped yet (built on each
        call; the kernel's list head is the newest, the last here)."""
        return {sp: None for sp in self.live_pages() if not sp.role.invalid}

    @property
    def orphans(self) -> dict[KvmMmuPage, None]:
        """The pages with sp.orphan set, oldest first (built on each call)."""
        return {sp: None for sp in self.live_pages() if sp.orphan}

    def hash_add(self, sp: KvmMmuPage, bucket: list[KvmMmuPage]) -> None:
        """hlist_add_head(&sp->hash_link, bucket), mirrored in gfn_sps."""
        bucket.append(sp)
        same_gfn = self.gfn_sps.get(sp.gfn)
        if same_gfn is None:
            self.gfn_sps[sp.gfn] = [sp]
        else:
            same_gfn.append(sp)

    def hash_del(self, sp: KvmMmuPage) -> None:
        """hlist_del(&sp->hash_link), mirrored in gfn_sps."""
        index = hash_64(sp.gfn)
        # In the older half of the pages allocated since the oldest one still there?
        old = sp.id - self.pages_base - self.pages_head < (len(self.pages) - self.pages_head) >> 1
        _remove_from_chain(self.mmu_page_hash[index], sp, old)
        if sp.role.invalid:
            self.mmu_page_hash_invalid[index] -= 1
        same_gfn = self.gfn_sps[sp.gfn]
        if len(same_gfn) == 1:
            del self.gfn_sps[sp.gfn]
        else:
            _remove_from_chain(same_gfn, sp, old)

    def mmu_page_hash_get(self, gfn: int) -> list[KvmMmuPage]:
        """Valid pages of `gfn` (bookkeeping lookup: not a walk the kernel does here)."""
        gen = self.mmu_valid_gen
        same_gfn = self.gfn_sps.get(gfn)
        if same_gfn is None:
            return []
        return [sp for sp in same_gfn if not sp.role.invalid and sp.mmu_valid_gen == gen]

    def orphan_summary(self) -> OrphanSummary:
        by_level: dict[str, int] = {}
        for sp in self.orphans:
            key = str(sp.role.level)
            by_level[key] = by_level.get(key, 0) + 1
        lost = self.unreachable_pages()
        return OrphanSummary(self.n_orphans, self.orphans_unsync, dict(sorted(by_level.items())),
                             unreachable=len(lost),
                             unreachable_unsync=sum(1 for sp in lost if sp.unsync))

    def unreachable_pages(self) -> list[KvmMmuPage]:
        """Valid pages no walk from a valid root the vCPU holds reaches (see OrphanSummary)."""
        roots = [self.root] if self.root is not None else []
        stack = [sp for sp in roots + self.prev_roots if not sp.role.invalid]
        seen: set[KvmMmuPage] = set()
        while stack:
            sp = stack.pop()
            if sp in seen:
                continue
            seen.add(sp)
            if sp.role.level > 1:
                stack.extend(child for _, child in sp.children())
        return [sp for sp in self.live_pages() if not sp.role.invalid and sp not in seen]
