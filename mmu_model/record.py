"""The compact record of a run: events as byte streams and integer columns, not objects.

Kvm hands every event to the recorder (timeline.Timeline, which owns one EventRecord).  An
event is written into two byte streams of LEB128 varints:

* the *args stream*: the event's shape (kind, argument names and kernel call path, interned
  into a table) and its argument values, each a tagged varint (see _put_value);
* the *state stream*: what seeking needs, the new state of each shadow page the event
  changed (only the parts that changed) and the deltas of the tracked counters, as one
  list of entries ended by a 0 (a delta's code is below _PAGE_CODES, a page's is not).

A page's state is two integers: a state word (live bit, unsync / invalid / orphan flags,
leaf SPTEs, unsync_children, root_count, write_flooding_count; see _pack) and a parent code
(no parent, one (parent id, index) pair, or an entry of an interned table of parent
lists).  Every ``checkpoint_every`` events a checkpoint stores the counters, the state
stream offset and which chunk of ``CHUNK`` pages' states changed since the previous one:
chunks live in an append-only pool shared by all checkpoints, so a checkpoint costs only the
chunks that changed.  The state after op step k is rebuilt from the checkpoint at or before
k plus fewer than ``checkpoint_every`` events of the state stream.

Every name (event kinds, argument names, call paths, counter names, strings) is interned
into a table as it first appears, so new event kinds, arguments or stats need no change
here.  The serialized form is these same columns (to_sections / from_sections).
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from operator import attrgetter
from typing import Any, Final

from .exceptions import RecordError, RunFormatError
from .kvm import EventKind, Kvm
from .page import KvmMmuPage
from .stats import STAT_NAMES, KvmVmStat

__all__ = ["CHUNK", "MODEL_COUNTERS", "TRACKED_COUNTERS", "EventRecord", "PageStates",
           "counters_of", "unpack_state"]

# Model counters recorded beside the KVM stats (not kernel stats).
MODEL_COUNTERS: Final = ("orphans", "orphans_unsync", "rmap_entries", "indirect_shadow_pages",
                         "hash_walked")
TRACKED_COUNTERS: Final[tuple[str, ...]] = STAT_NAMES + MODEL_COUNTERS
# The stats are read by name (attrgetter), whatever stats.py declares.  Reading them that
# way costs about half a microsecond per event, so while STAT_NAMES is the set below a
# compiled reader of those fields does the same job (checked at import: any other set of
# stats falls back to reading by name).
_FAST_STAT_NAMES: Final = (
    "remote_tlb_flush", "remote_tlb_flush_requests", "mmu_shadow_zapped", "mmu_pte_write",
    "mmu_pde_zapped", "mmu_flooded", "mmu_recycled", "mmu_cache_miss", "mmu_unsync",
    "mmu_shadow_pages", "pages_4k", "pages_2m", "pages_1g", "nx_lpage_splits",
    "max_mmu_rmap_size", "max_mmu_page_hash_collisions",
)
_BY_NAME: Final = STAT_NAMES != _FAST_STAT_NAMES
_N_STATS: Final = len(STAT_NAMES)
_SERIALS: Final = [0]  # the serial number of the last EventRecord made (see KvmMmuPage)
_stats_by_name: Final = attrgetter(*STAT_NAMES)



CHUNK_SHIFT: Final = 7
CHUNK: Final = 1 << CHUNK_SHIFT
_CHUNK_MASK: Final = CHUNK - 1
BLOCK: Final = 16  # events per entry of the stream offset index
FULL_EVERY: Final = 64  # checkpoints per full copy of the chunk directory
# Bytes buffered before they join a stream: of 2**8 .. 2**16, 2**10 ran populated-16g in the
# fewest instructions (callgrind), the list's regrowth after each flush included.
_FLUSH: Final = 1 << 10
# A list item per byte, costly as it is (a boxed int, an append and bytearray()'s reading
# of it), beats gathering the bytes 7 to an int packed by struct: keeping the int being
# filled in compiled code costs more per varint than it saves per byte (7% more
# instructions recording populated-16g, with struct's fast "N" format).
# A byte joins a buffer as _BYTE[b], the interpreter's own int object for b, not as a
# compiled int boxed for the append: a tuple read instead of PyLong_FromLong saves about
# 16 instructions per byte (6% of what recording populated-16g costs, callgrind).  The
# buffers hold those objects untyped (Any), so that compiled code never unboxes them.
# Per byte that costs about 80 instructions (the tuple read, the append, the clear, and
# bytearray()'s read: 34 of them, the cheapest conversion of a list of ints, where bytes()
# takes 76 and struct.pack("<n>B", *list) 110).  Each of these did worse than it, recording
# populated-16g (callgrind, recorded minus import: 1,928M with it):
# * a list of fixed length written by index at a position the writers pass along and
#   return (no append, no clear; flushed as bytearray(buf[:pos])): 1,974M.  A store in
#   place (CPyList_SetItem, a bounds check and a decref) costs about what an append does,
#   and the position's arithmetic and the slice come on top;
# * a piece per varint or per 14 bits of one, from tables of 2**14 bytes objects joined
#   by b"".join() (2,022M: join() takes a buffer view of every piece, about 200
#   instructions each), or of latin-1 str objects joined by "".join() and encoded when
#   sealed (1,992M: about 90 per piece);
# * two bytes at a time by list.extend() of a pair of these ints from a table: 1,987M.
_BYTE: Final[tuple[Any, ...]] = tuple(range(256))
Buffer = list[Any]
_CHUNK_INT64S: Final = struct.Struct(f"{CHUNK}q")  # native int64s, as array("q") holds

# State word layout, low bits first.
LIVE: Final = 1
UNSYNC: Final = 2
INVALID: Final = 4
ORPHAN: Final = 8
_LEAVES_SHIFT: Final = 4
_UC_SHIFT: Final = 14
_RC_SHIFT: Final = 24
_WFC_SHIFT: Final = 32
_MASK10: Final = 0x3FF
_MASK8: Final = 0xFF
# A state-stream entry's first varint: 1 + (counter << 2 | k) for a counter delta (see
# _put_delta), _PAGE_CODES + (sp id << 2 | mask) for a page, so that an event's deltas
# and pages share one list and one terminator.
_MAX_COUNTERS: Final = 32
_PAGE_CODES: Final = 1 + 4 * _MAX_COUNTERS
if len(TRACKED_COUNTERS) > _MAX_COUNTERS:
    raise RecordError(f"{len(TRACKED_COUNTERS)} tracked counters: the state stream has codes "
                      f"for {_MAX_COUNTERS}")

# Value tags (low 3 bits of a value's first varint).
_NONE: Final = 0  # the varint 0; with a payload of 1, _WIDE_MARK
_FALSE: Final = 1
_TRUE: Final = 2
_STR: Final = 3
_LIST: Final = 4
_TUPLE: Final = 5
_FLOAT: Final = 6
_INT: Final = 7
_DOUBLE: Final = struct.Struct("<d")
_WIDE: Final = 1 << 63
_WIDE_MARK: Final = 1 << 3 | _NONE  # _WIDE plus the int value that follows (see _put_int)

Parents = tuple[tuple[int, int], ...]
# (flags, unsync_children, write_flooding_count, root_count, leaf_sptes, parents)
State = tuple[int, int, int, int, int, Parents]
Shape = tuple[str, tuple[str, ...], int]  # kind, argument names, call path id


def counters_of(kvm: Kvm) -> list[int]:
    """Every tracked counter's current value, in TRACKED_COUNTERS order."""
    values: list[int] = list(_stats_by_name(kvm.stat))
    values.append(kvm.n_orphans)
    values.append(kvm.orphans_unsync)
    values.append(kvm.rmaps.entries)
    values.append(kvm.indirect_shadow_pages)
    values.append(kvm.hash_walked)
    return values


def _put(buf: Buffer, v: int) -> None:
    """Append `v` (>= 0) as an LEB128 varint; up to 5 bytes without a loop."""
    if v < 0x80:
        buf.append(_BYTE[v])
        return
    buf.append(_BYTE[(v & 0x7F) | 0x80])
    if v < 0x4000:
        buf.append(_BYTE[v >> 7])
        return
    buf.append(_BYTE[((v >> 7) & 0x7F) | 0x80])
    if v < 0x200000:
        buf.append(_BYTE[v >> 14])
        return
    buf.append(_BYTE[((v >> 14) & 0x7F) | 0x80])
    if v < 0x10000000:
        buf.append(_BYTE[v >> 21])
        return
    buf.append(_BYTE[((v >> 21) & 0x7F) | 0x80])
    v >>= 28
    while v >= 0x80:
        buf.append(_BYTE[(v & 0x7F) | 0x80])
        v >>= 7
    buf.append(_BYTE[v])


def _put_int(buf: Buffer, v: int) -> None:
    """Append the int value `v` (tag _INT): the varint of (zigzag(v) << 3 | _INT), built
    from v's low three bits and the varint of the rest (v >> 3), so that a 64-bit argument
    (an EPT entry, too wide for a compiled short int) costs two long-int operations: the
    rest is short, and its sign is v's.  (Working the rest out of v >> 62 and v's low 62
    bits, two long-int operations whatever v, saved nothing measurable: 33k wide values.)

    An int of 2**63 or more (an EPT entry with bit 63, suppress #VE, set) is _WIDE_MARK
    and then the int v - 2**63: 2 bytes rather than 10 for 2**63 itself (the entry L1
    zaps to), 6 rather than 10 for a present entry, and short ints from there on."""
    if v >> 62 > 0:  # not a short int (nor negative): native for a short v, else one
        w = v - _WIDE  # long-int operation, where a compare would box the constant
        if w >= 0:
            buf.append(_BYTE[_WIDE_MARK])
            v = w
    rest = v >> 3
    low = v & 7
    if rest >= 0:
        tag = _INT  # zigzag(v) << 3 | _INT == v << 4 | 7
    else:  # zigzag(v) << 3 | _INT == ~v << 4 | 15, and ~v == ~rest << 3 | (7 - low)
        rest = ~rest
        low = 7 - low
        tag = 8 | _INT
    if not rest:
        buf.append(_BYTE[low << 4 | tag])
        return
    buf.append(_BYTE[low << 4 | tag | 0x80])
    if rest < 0x80:
        buf.append(_BYTE[rest])
    elif rest < 0x4000:
        buf.append(_BYTE[(rest & 0x7F) | 0x80])
        buf.append(_BYTE[rest >> 7])
    else:
        _put(buf, rest)


def _put_delta(buf: Buffer, i: int, d: int) -> None:
    """Counter `i` (< _MAX_COUNTERS) changed by `d`: one varint (i << 2 | k) + 1, k 0..2
    for d +1, -1, +2 (one byte for the first 31 counters), k 3 for any other d, its zigzag
    varint after (two bytes for hash_walked's usual delta: written here, not by _put)."""
    if d == 1:
        c = (i << 2) + 1
    elif d == -1:
        c = (i << 2) + 2
    elif d == 2:
        c = (i << 2) + 3
    else:
        c = (i << 2) + 4
        z = d << 1 if d >= 0 else ((-d) << 1) - 1  # _zigzag(d)
        if c < 0x80:
            buf.append(_BYTE[c])
            if z < 0x80:
                buf.append(_BYTE[z])
            elif z < 0x4000:
                buf.append(_BYTE[(z & 0x7F) | 0x80])
                buf.append(_BYTE[z >> 7])
            else:
                _put(buf, z)
            return
        _put(buf, c)
        _put(buf, z)
        return
    if c < 0x80:
        buf.append(_BYTE[c])
    else:
        _put(buf, c)


def _get_delta(data: bytes, pos: int, code: int) -> tuple[int, int, int]:
    """The delta entry whose first varint `code` (not 0) ends at `pos`: (counter index,
    delta, the position after the entry)."""
    code -= 1
    k = code & 3
    if k == 3:
        z, pos = _get(data, pos)
        return code >> 2, _unzigzag(z), pos
    return code >> 2, (1, -1, 2)[k], pos


def _zigzag(v: int) -> int:
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def _get(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    b = data[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    v = b & 0x7F
    shift = 7
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, pos
        shift += 7


def _pack(sp: KvmMmuPage) -> int:
    leaves = sp.n_leaves
    uc = sp.unsync_children
    rc = sp.root_count
    wfc = sp.write_flooding_count
    if (leaves | uc) >> 10 or rc >> 8 or wfc >> 31:  # too wide, or negative
        raise RecordError(f"sp {sp.id}: a state field is outside what the record stores "
                          f"(leaves {leaves}, unsync_children {uc}, root_count {rc}, "
                          f"write_flooding_count {wfc})")
    word = LIVE | leaves << _LEAVES_SHIFT | uc << _UC_SHIFT | rc << _RC_SHIFT | wfc << _WFC_SHIFT
    if sp.unsync:
        word |= UNSYNC
    if sp.role.invalid:
        word |= INVALID
    if sp.orphan:
        word |= ORPHAN
    return word


def unpack_state(word: int, parents: Parents) -> State:
    """The state tuple (flags, unsync_children, wfc, root_count, leaf_sptes, parents)."""
    return ((word >> 1) & 7, (word >> _UC_SHIFT) & _MASK10, word >> _WFC_SHIFT,
            (word >> _RC_SHIFT) & _MASK8, (word >> _LEAVES_SHIFT) & _MASK10, parents)


def _one_parent_code(sp_id: int, parent_id: int, index: int) -> int:
    """The parent code of a page with one parent SPTE: (parent id << 9 | index) << 1 | 1."""
    if index >> 9:
        raise RecordError(f"sp {sp_id}: parent SPTE index {index} is not 0..511")
    return (parent_id << 9 | index) << 1 | 1


class PageStates:
    """Every page's (state word, parent code) at one step: the checkpoint's chunks from the
    pool, with the chunks changed since then copied (copy-on-write)."""

    def __init__(self, record: EventRecord, directory: list[int]) -> None:
        self.record = record
        self.directory = directory
        self.words: dict[int, list[int]] = {}
        self.pcodes: dict[int, list[int]] = {}

    def get(self, sp_id: int) -> tuple[int, int]:
        c = sp_id >> CHUNK_SHIFT
        words = self.words.get(c)
        if words is not None:
            return words[sp_id & _CHUNK_MASK], self.pcodes[c][sp_id & _CHUNK_MASK]
        if c < len(self.directory):
            no = self.directory[c]
            if no >= 0:
                at = no * CHUNK + (sp_id & _CHUNK_MASK)
                return self.record.pool_words[at], self.record.pool_pcodes[at]
        return 0, 0

    def set(self, sp_id: int, word: int, pcode: int) -> None:
        c = sp_id >> CHUNK_SHIFT
        words = self.words.get(c)
        if words is None:
            words, pcodes = self._chunk(c)
            self.words[c] = words
            self.pcodes[c] = pcodes
        else:
            pcodes = self.pcodes[c]
        words[sp_id & _CHUNK_MASK] = word
        pcodes[sp_id & _CHUNK_MASK] = pcode

    def _chunk(self, c: int) -> tuple[list[int], list[int]]:
        if c < len(self.directory) and self.directory[c] >= 0:
            at = self.directory[c] * CHUNK
            return (self.record.pool_words[at:at + CHUNK].tolist(),
                    self.record.pool_pcodes[at:at + CHUNK].tolist())
        return [0] * CHUNK, [0] * CHUNK

    def live(self) -> list[tuple[int, int, int]]:
        """(sp id, state word, parent code) of every live page, in id order."""
        out: list[tuple[int, int, int]] = []
        n = len(self.directory)
        if self.words:
            n = max(n, max(self.words) + 1)
        for c in range(n):
            words = self.words.get(c)
            if words is None:
                if c >= len(self.directory) or self.directory[c] < 0:
                    continue
                words, pcodes = self._chunk(c)
            else:
                pcodes = self.pcodes[c]
            base = c << CHUNK_SHIFT
            for j in range(CHUNK):
                word = words[j]
                if word:
                    out.append((base + j, word, pcodes[j]))
        return out


class _Columns:
    """The columns a record grows per event or per page, as arrays of int64.

    While recording, their newest entries wait in lists on the EventRecord, which join
    these arrays at each checkpoint and when the record is sealed (see _join): appending to
    a list is a native operation of the compiled recorder, while array.append() is a method
    call that parses its argument.
    """

    def __init__(self) -> None:
        self.block_offsets = array("q")
        self.action_first = array("q")
        self.boot_first = array("q")
        self.boot_values = array("q")
        self.row_of = array("q")
        self.st_id = array("q")
        self.st_gfn = array("q")
        self.st_l2_gfn = array("q")
        self.st_role = array("q")
        self.st_created = array("q")

    def as_dict(self) -> dict[str, array[int]]:
        return {name: getattr(self, name) for name in _COLUMN_NAMES}

    def read(self, columns: dict[str, memoryview]) -> None:
        """Take every column from a serialized record's `columns` (to_sections' arrays)."""
        for name in _COLUMN_NAMES:
            setattr(self, name, _int64s(columns[name]))


# _Columns' attributes, in the order they are serialized.
_COLUMN_NAMES: Final = ("block_offsets", "action_first", "boot_first", "boot_values", "row_of",
                        "st_id", "st_gfn", "st_l2_gfn", "st_role", "st_created")
# Those that grow while recording (EventRecord's lists of the same names with a leading
# underscore): row_of is worked out when the record is sealed.
_GROWN: Final = tuple(name for name in _COLUMN_NAMES if name != "row_of")


class EventRecord:
    """The recorded events of one run, their page-state changes, counters and checkpoints."""

    def __init__(self, counters: list[int], checkpoint_every: int = 1024) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self.checkpoint_every = checkpoint_every
        self._until_checkpoint = checkpoint_every  # events still to record before the next
        self.counter_names: tuple[str, ...] = TRACKED_COUNTERS
        self.n_events = 0
        # Interned tables.
        self.shapes: list[Shape] = []
        self._shape_ids: dict[Shape, int] = {}
        self._last_shape: dict[str, tuple[int, tuple[str, ...], int]] = {}
        # By Kvm path-trie node, the interned path id (-1: not seen yet), and by node and
        # EventKind id, the interned shape id (-1: not seen yet).
        self._node_path: list[int] = []
        self._node_shapes: list[list[int]] = []
        self.paths: list[tuple[str, ...]] = []
        self._path_ids: dict[tuple[str, ...], int] = {}
        self.strings: list[str] = []
        self._string_ids: dict[str, int] = {}
        self.parent_lists: list[Parents] = []
        self._parent_list_ids: dict[Parents, int] = {}
        # (role word, describe(), level, direct, guest_mode) of each role pages start with.
        self.roles: list[tuple[int, str, int, bool, bool]] = []
        self._role_ids: dict[int, int] = {}
        # Streams (bytes once sealed; while recording, flushed segments plus a buffer).
        self.args_stream = b""
        self.state_stream = b""
        self._args_parts: list[bytearray] = []
        self._state_parts: list[bytearray] = []
        self._args_len = 0
        self._state_len = 0
        self._abuf: Buffer = []
        self._sbuf: Buffer = []
        # The columns that grow per event or per page (see _Columns), read through the
        # properties of the same names, which seal the record; while recording, their
        # newest entries are in the lists below.  Per BLOCK events, the offsets of its
        # first event in the args and state streams; per action, its first event; boots
        # as runs of actions (first action, boot); per page, in first-touch order, its
        # static row (sp id, gfn, l2_gfn, role, the event that made it); by sp id, the
        # page's row (filled in when the record is sealed).
        self._columns = _Columns()
        self._block_offsets: list[int] = []
        self._action_first: list[int] = []
        self._boot_first: list[int] = []
        self._boot_values: list[int] = []
        self._n_actions = 0
        self.boot = 0
        self._last_boot = -1  # boot_values[-1] (-1: no action yet), read per event
        self._st_id: list[int] = []
        self._st_gfn: list[int] = []
        self._st_l2_gfn: list[int] = []
        self._st_role: list[int] = []
        self._st_created: list[int] = []
        # Page states: the current ones while recording, the pool of checkpointed chunks.
        # While recording, each page's state as last stored is on the page itself
        # (KvmMmuPage.recorded_word / recorded_pcode, valid where recorded_by is _serial).
        _SERIALS[0] += 1
        self._serial = _SERIALS[0]
        self._dirty: list[int] = []  # chunks changed since the last checkpoint
        self._is_dirty: list[bool] = []  # by chunk
        self._directory: list[int] = []
        self.pool_words = array("q")
        self.pool_pcodes = array("q")
        # While recording, the pool's chunks wait as packed int64s, joined when the record
        # is sealed: an array grown a chunk at a time is copied whole by every realloc.
        self._pool_chunks = 0
        self._pool_words_parts: list[bytes] = []
        self._pool_pcodes_parts: list[bytes] = []
        # Likewise _Columns' newest entries, packed at each checkpoint (see _join), by
        # column in _GROWN order.
        self._column_parts: list[list[bytes]] = [[] for _ in _GROWN]
        # The counters as last recorded: the stats in a KvmVmStat (compiled fields, see
        # _put_stats) or, if stats.py declares other stats, a list; the model's counters.
        n = len(STAT_NAMES)
        if len(counters) != len(TRACKED_COUNTERS):
            raise ValueError(f"{len(counters)} counters, not {len(TRACKED_COUNTERS)}")
        self._counters = list(counters[:n])
        self._stat = KvmVmStat()
        for name, value in zip(STAT_NAMES, counters, strict=False):
            setattr(self._stat, name, value)
        self._n_orphans = counters[n]
        self._orphans_unsync = counters[n + 1]
        self._rmap_entries = counters[n + 2]
        self._indirect_shadow_pages = counters[n + 3]
        self._hash_walked = counters[n + 4]
        self._counters_int64s = struct.Struct(f"{len(counters)}q")  # native, as array("q")
        self.cp_counters = array("q", counters)
        self.cp_state_offset = array("q", [0])
        self.cp_patch_start = array("q", [0])
        self.cp_patches = array("q")  # (chunk index, pool chunk or -1) pairs
        self.cp_full: list[array[int]] = [array("q")]
        self.sealed = False

    # -- recording ------------------------------------------------------------------------
    def add(self, kvm: Kvm, kind: str, args: dict[str, Any], action: bool) -> None:
        """Record one event given as its kind and keyword dict (Kvm.emit())."""
        index = self._start(action)
        abuf = self._abuf
        _put(abuf, self._shape_id(kind, args, self._path_id(kvm)))
        self._put_values(abuf, tuple(args.values()))
        self._finish(kvm, index)

    def add_values(self, kvm: Kvm, kind: EventKind, values: tuple[object, ...],
                   action: bool) -> None:
        """Record one event given positionally (Kvm.event()): the same bytes as add() with
        dict(zip(kind.args, values)), without the dict."""
        index = self._begin(kvm, kind, action)
        self._put_values(self._abuf, values)
        self._finish(kvm, index)

    def add_ints(self, kvm: Kvm, kind: EventKind, a: int, b: int, c: int) -> None:
        """Record one event of up to three int arguments given as ints (Kvm.event_ints()):
        the same bytes as add_values() with the first len(kind.args) of them, without a
        tuple of boxed ints."""
        n = len(kind.args)
        if n > 3:
            raise RecordError(f"{kind!r} has more than the three int arguments add_ints() takes")
        index = self._begin(kvm, kind, False)
        abuf = self._abuf
        if n:
            _put_int(abuf, a)
            if n > 1:
                _put_int(abuf, b)
                if n > 2:
                    _put_int(abuf, c)
        self._finish(kvm, index)

    def _begin(self, kvm: Kvm, kind: EventKind, action: bool) -> int:
        """Start recording an event of `kind` (see _start) and write its shape; its index."""
        index = self._start(action)
        abuf = self._abuf
        node = kvm.path_node
        kid = kind.id
        node_shapes = self._node_shapes
        shape_id = -1
        if node < len(node_shapes):
            shapes = node_shapes[node]
            if kid < len(shapes):
                shape_id = shapes[kid]
        if shape_id < 0:
            shape_id = self._node_shape(kvm, kind)
        if shape_id < 0x80:
            abuf.append(_BYTE[shape_id])
        else:
            _put(abuf, shape_id)
        return index

    def _put_values(self, abuf: Buffer, values: tuple[object, ...]) -> None:
        """An event's arguments, in order: ints and bools inline (the usual arguments, see
        _put_value), anything else through _put_value."""
        for value in values:
            if type(value) is int:
                _put_int(abuf, value)
            elif value is True:
                abuf.append(_TRUE)
            elif value is False:
                abuf.append(_FALSE)
            else:
                self._put_value(abuf, value)

    def _start(self, action: bool) -> int:
        """The new event's index; its action and block bookkeeping."""
        if self.sealed:
            raise RecordError("the record is sealed: nothing can be recorded after reading")
        index = self.n_events
        if action:
            self._action_first.append(index)
            self._n_actions += 1
            if self._last_boot != self.boot:
                self._boot_first.append(self._n_actions - 1)
                self._boot_values.append(self.boot)
                self._last_boot = self.boot
        elif self._last_boot < 0:
            raise RecordError("kernel operation recorded outside a guest action")
        if not index & (BLOCK - 1):
            self._block_offsets.append(self._args_len + len(self._abuf))
            self._block_offsets.append(self._state_len + len(self._sbuf))
        return index

    def _node_shape(self, kvm: Kvm, kind: EventKind) -> int:
        """The interned shape of `kind` at kvm's call path, the first time it is seen there."""
        node_shapes = self._node_shapes
        node = kvm.path_node
        while node >= len(node_shapes):
            node_shapes.append([])
        shapes = node_shapes[node]
        if kind.id >= len(shapes):
            shapes.extend([-1] * (kind.id + 1 - len(shapes)))
        shape_id = self._intern_shape((kind.name, kind.args, self._path_id(kvm)))
        shapes[kind.id] = shape_id
        return shape_id

    def _path_id(self, kvm: Kvm) -> int:
        """The interned id of kvm's call path, by its node in Kvm's trie of paths."""
        node = kvm.path_node
        node_path = self._node_path
        if node < len(node_path):
            path_id = node_path[node]
            if path_id >= 0:
                return path_id
        else:
            node_path.extend([-1] * (node + 1 - len(node_path)))
        path = kvm.path
        found = self._path_ids.get(path)
        if found is None:
            path_id = len(self.paths)
            self.paths.append(path)
            self._path_ids[path] = path_id
        else:
            path_id = found
        node_path[node] = path_id
        return path_id

    def _finish(self, kvm: Kvm, index: int) -> None:
        """The state stream of event `index`: changed pages, then counter deltas."""
        sbuf = self._sbuf
        if kvm.n_touched:
            self._put_pages(kvm, sbuf, index)
        if _BY_NAME:
            old = self._counters
            stats: tuple[int, ...] = _stats_by_name(kvm.stat)
            for i in range(len(stats)):
                if stats[i] != old[i]:
                    _put_delta(sbuf, i, stats[i] - old[i])
                    old[i] = stats[i]
        else:
            self._put_stats(sbuf, kvm.stat)
        n = _N_STATS
        v = kvm.n_orphans
        if v != self._n_orphans:
            _put_delta(sbuf, n, v - self._n_orphans)
            self._n_orphans = v
        v = kvm.orphans_unsync
        if v != self._orphans_unsync:
            _put_delta(sbuf, n + 1, v - self._orphans_unsync)
            self._orphans_unsync = v
        v = kvm.rmaps.entries
        if v != self._rmap_entries:
            _put_delta(sbuf, n + 2, v - self._rmap_entries)
            self._rmap_entries = v
        v = kvm.indirect_shadow_pages
        if v != self._indirect_shadow_pages:
            _put_delta(sbuf, n + 3, v - self._indirect_shadow_pages)
            self._indirect_shadow_pages = v
        v = kvm.hash_walked
        if v != self._hash_walked:
            _put_delta(sbuf, n + 4, v - self._hash_walked)
            self._hash_walked = v
        sbuf.append(0)
        self.n_events = index + 1
        if len(sbuf) > _FLUSH:
            # bytearray() reads a list of ints faster than bytes() does
            self._state_parts.append(bytearray(sbuf))
            self._state_len += len(sbuf)
            sbuf.clear()
        abuf = self._abuf
        if len(abuf) > _FLUSH:
            self._args_parts.append(bytearray(abuf))
            self._args_len += len(abuf)
            abuf.clear()
        self._until_checkpoint -= 1
        if not self._until_checkpoint:
            self._until_checkpoint = self.checkpoint_every
            self._checkpoint(kvm)

    def _put_pages(self, kvm: Kvm, sbuf: Buffer, index: int) -> None:
        """The pages event `index` changed, each as (sp id, what changed) and its new
        state word and parent code (_pack, and _parent_code inlined for one parent): this loop
        runs for every page of every event."""
        serial = self._serial
        touched = kvm.touched_pages
        is_dirty = self._is_dirty
        for t in range(kvm.n_touched):
            sp = touched[t]
            sp_id = sp.id
            if sp.recorded_by != serial:  # the first event of the page: its static row
                sp.recorded_by = serial
                sp.recorded_word = 0
                sp.recorded_pcode = 0
                self._add_static(sp, index)
            if sp.freed:
                if not sp.recorded_word:
                    continue
                word = 0
                pcode = 0
                mask = 0
            else:
                word = _pack(sp)
                parents = sp.parent_ptes
                old_pcode = sp.recorded_pcode
                if len(parents) == 1:  # the usual case, without _parent_code()'s call
                    parent, pte_index = parents[0]
                    pcode = _one_parent_code(sp_id, parent.id, pte_index)
                elif not parents:
                    pcode = 0
                else:
                    pcode = self._parent_code(sp, old_pcode)
                mask = 0
                if word != sp.recorded_word:
                    mask = 1
                    sp.recorded_word = word
                if pcode != old_pcode:
                    mask |= 2
                    sp.recorded_pcode = pcode
                elif not mask:
                    continue
            if not mask:
                sp.recorded_word = 0
                sp.recorded_pcode = 0
            c = sp_id >> CHUNK_SHIFT
            if c >= len(is_dirty):
                is_dirty.extend([False] * (c + 1 - len(is_dirty)))
            if not is_dirty[c]:
                is_dirty[c] = True
                self._dirty.append(c)
            code = (sp_id << 2 | mask) + _PAGE_CODES  # mask 0: freed
            if code < 0x200000 and code >= 0x4000:  # the usual size of a page code
                sbuf.append(_BYTE[(code & 0x7F) | 0x80])
                sbuf.append(_BYTE[((code >> 7) & 0x7F) | 0x80])
                sbuf.append(_BYTE[code >> 14])
            else:
                _put(sbuf, code)
            if mask & 1:
                if word < 0x80:
                    sbuf.append(_BYTE[word])
                elif word < 0x4000:  # a level-1 page's word: its leaves and flags
                    sbuf.append(_BYTE[(word & 0x7F) | 0x80])
                    sbuf.append(_BYTE[word >> 7])
                else:
                    _put(sbuf, word)
            if mask & 2:
                _put(sbuf, pcode)

    def _counter_values(self) -> list[int]:
        """Every tracked counter as last recorded, in TRACKED_COUNTERS order."""
        values = list(self._counters) if _BY_NAME else list(_stats_by_name(self._stat))
        values.append(self._n_orphans)
        values.append(self._orphans_unsync)
        values.append(self._rmap_entries)
        values.append(self._indirect_shadow_pages)
        values.append(self._hash_walked)
        return values

    def _shape_id(self, kind: str, args: dict[str, Any], path_id: int) -> int:
        """The interned (kind, argument names, path); the last one per kind is checked first."""
        last = self._last_shape.get(kind)
        if last is not None and last[0] == path_id:
            keys = last[1]
            if len(keys) == len(args):
                j = 0
                for key in args:
                    if key is not keys[j] and key != keys[j]:
                        break
                    j += 1
                if j == len(keys):
                    return last[2]
        shape = (kind, tuple(args), path_id)
        shape_id = self._intern_shape(shape)
        self._last_shape[kind] = (path_id, shape[1], shape_id)
        return shape_id

    def _intern_shape(self, shape: Shape) -> int:
        shape_id = self._shape_ids.get(shape)
        if shape_id is None:
            shape_id = len(self.shapes)
            self.shapes.append(shape)
            self._shape_ids[shape] = shape_id
        return shape_id

    def _put_stats(self, buf: Buffer, stat: KvmVmStat) -> None:
        """The delta of each of _FAST_STAT_NAMES that changed since the last event, read as
        compiled fields of `stat` and of the copy kept here (no boxed int is touched for a
        stat that did not change)."""
        last = self._stat
        if stat.remote_tlb_flush != last.remote_tlb_flush:
            _put_delta(buf, 0, stat.remote_tlb_flush - last.remote_tlb_flush)
            last.remote_tlb_flush = stat.remote_tlb_flush
        if stat.remote_tlb_flush_requests != last.remote_tlb_flush_requests:
            _put_delta(buf, 1, stat.remote_tlb_flush_requests - last.remote_tlb_flush_requests)
            last.remote_tlb_flush_requests = stat.remote_tlb_flush_requests
        if stat.mmu_shadow_zapped != last.mmu_shadow_zapped:
            _put_delta(buf, 2, stat.mmu_shadow_zapped - last.mmu_shadow_zapped)
            last.mmu_shadow_zapped = stat.mmu_shadow_zapped
        if stat.mmu_pte_write != last.mmu_pte_write:
            _put_delta(buf, 3, stat.mmu_pte_write - last.mmu_pte_write)
            last.mmu_pte_write = stat.mmu_pte_write
        if stat.mmu_pde_zapped != last.mmu_pde_zapped:
            _put_delta(buf, 4, stat.mmu_pde_zapped - last.mmu_pde_zapped)
            last.mmu_pde_zapped = stat.mmu_pde_zapped
        if stat.mmu_flooded != last.mmu_flooded:
            _put_delta(buf, 5, stat.mmu_flooded - last.mmu_flooded)
            last.mmu_flooded = stat.mmu_flooded
        if stat.mmu_recycled != last.mmu_recycled:
            _put_delta(buf, 6, stat.mmu_recycled - last.mmu_recycled)
            last.mmu_recycled = stat.mmu_recycled
        if stat.mmu_cache_miss != last.mmu_cache_miss:
            _put_delta(buf, 7, stat.mmu_cache_miss - last.mmu_cache_miss)
            last.mmu_cache_miss = stat.mmu_cache_miss
        if stat.mmu_unsync != last.mmu_unsync:
            _put_delta(buf, 8, stat.mmu_unsync - last.mmu_unsync)
            last.mmu_unsync = stat.mmu_unsync
        if stat.mmu_shadow_pages != last.mmu_shadow_pages:
            _put_delta(buf, 9, stat.mmu_shadow_pages - last.mmu_shadow_pages)
            last.mmu_shadow_pages = stat.mmu_shadow_pages
        if stat.pages_4k != last.pages_4k:
            _put_delta(buf, 10, stat.pages_4k - last.pages_4k)
            last.pages_4k = stat.pages_4k
        if stat.pages_2m != last.pages_2m:
            _put_delta(buf, 11, stat.pages_2m - last.pages_2m)
            last.pages_2m = stat.pages_2m
        if stat.pages_1g != last.pages_1g:
            _put_delta(buf, 12, stat.pages_1g - last.pages_1g)
            last.pages_1g = stat.pages_1g
        if stat.nx_lpage_splits != last.nx_lpage_splits:
            _put_delta(buf, 13, stat.nx_lpage_splits - last.nx_lpage_splits)
            last.nx_lpage_splits = stat.nx_lpage_splits
        if stat.max_mmu_rmap_size != last.max_mmu_rmap_size:
            _put_delta(buf, 14, stat.max_mmu_rmap_size - last.max_mmu_rmap_size)
            last.max_mmu_rmap_size = stat.max_mmu_rmap_size
        if stat.max_mmu_page_hash_collisions != last.max_mmu_page_hash_collisions:
            _put_delta(buf, 15,
                       stat.max_mmu_page_hash_collisions - last.max_mmu_page_hash_collisions)
            last.max_mmu_page_hash_collisions = stat.max_mmu_page_hash_collisions

    def _put_value(self, buf: Buffer, value: object) -> None:
        if type(value) is int:  # not a bool: those are tagged as themselves
            _put_int(buf, value)
        elif value is None:
            buf.append(_NONE)
        elif value is True:
            buf.append(_TRUE)
        elif value is False:
            buf.append(_FALSE)
        elif isinstance(value, int):  # an int subclass other than bool: stored as an int
            _put_int(buf, int(value))
        elif isinstance(value, str):
            sid = self._string_ids.get(value)
            if sid is None:
                sid = len(self.strings)
                self.strings.append(value)
                self._string_ids[value] = sid
            _put(buf, sid << 3 | _STR)
        elif isinstance(value, list):
            _put(buf, len(value) << 3 | _LIST)
            for item in value:
                self._put_value(buf, item)
        elif isinstance(value, tuple):
            _put(buf, len(value) << 3 | _TUPLE)
            for item in value:
                self._put_value(buf, item)
        elif isinstance(value, float):
            buf.append(_FLOAT)
            buf.extend(_DOUBLE.pack(value))
        else:
            raise RecordError(f"an event argument of type {type(value).__name__} cannot be "
                              f"recorded (None, bool, int, float, str, list, tuple can)")

    def _parent_code(self, sp: KvmMmuPage, old: int) -> int:
        """0: no parent; odd: one parent, (id << 9 | index) << 1 | 1; even: a parent list.
        `old` is the page's last code: a list that did not change is not built again."""
        parents = sp.parent_ptes
        if not parents:
            return 0
        if len(parents) == 1:
            parent, index = parents[0]
            return _one_parent_code(sp.id, parent.id, index)
        if old and not old & 1:
            known = self.parent_lists[(old >> 1) - 1]
            if len(known) == len(parents):
                j = 0
                for p, i in parents:
                    pair = known[j]
                    if pair[0] != p.id or pair[1] != i:
                        break
                    j += 1
                if j == len(known):
                    return old
        key = tuple([(p.id, i) for p, i in parents])
        lid = self._parent_list_ids.get(key)
        if lid is None:
            lid = len(self.parent_lists)
            self.parent_lists.append(key)
            self._parent_list_ids[key] = lid
        return (lid + 1) << 1

    def _add_static(self, sp: KvmMmuPage, index: int) -> None:
        sp_id = sp.id
        role = sp.role
        rid = self._role_ids.get(role.word)
        if rid is None:
            rid = len(self.roles)
            self.roles.append((role.word, role.describe(), role.level, role.direct,
                               role.guest_mode))
            self._role_ids[role.word] = rid
        self._st_id.append(sp_id)
        self._st_gfn.append(sp.gfn)
        self._st_l2_gfn.append(sp.l2_gfn)
        self._st_role.append(rid)
        self._st_created.append(index)

    def _checkpoint(self, kvm: Kvm) -> None:
        directory = self._directory
        patches = self.cp_patches
        pages = kvm.pages
        base = kvm.pages_base
        serial = self._serial
        for c in sorted(self._dirty):
            self._is_dirty[c] = False
            # The chunk's states as last stored: on the pages still allocated (a freed
            # page's last state is 0, and pages holds only pages not yet freed).
            words = [0] * CHUNK
            pcodes = [0] * CHUNK
            live = False
            lo = (c << CHUNK_SHIFT) - base
            for j in range(max(0, -lo), max(0, min(CHUNK, len(pages) - lo))):
                sp = pages[lo + j]
                if sp is not None and sp.recorded_by == serial and sp.recorded_word:
                    words[j] = sp.recorded_word
                    pcodes[j] = sp.recorded_pcode
                    live = True
            while c >= len(directory):
                directory.append(-1)
            if live:
                no = self._pool_chunks
                self._pool_chunks = no + 1
                # struct converts a chunk to int64s faster than array.extend() does
                self._pool_words_parts.append(_CHUNK_INT64S.pack(*words))
                self._pool_pcodes_parts.append(_CHUNK_INT64S.pack(*pcodes))
            else:
                no = -1  # every page of the chunk freed (or never live)
            directory[c] = no
            patches.append(c)
            patches.append(no)
        self._dirty.clear()
        self._join_columns()
        self.cp_patch_start.append(len(patches) // 2)
        self.cp_counters.frombytes(self._counters_int64s.pack(*self._counter_values()))
        self.cp_state_offset.append(self._state_len + len(self._sbuf))
        if (len(self.cp_state_offset) - 1) % FULL_EVERY == 0:
            self.cp_full.append(array("q", directory))

    def _join_columns(self) -> None:
        """The columns' newest entries are packed (at a checkpoint, and sealing)."""
        for name, parts in zip(_GROWN, self._column_parts, strict=True):
            _join(parts, getattr(self, "_" + name))

    def seal(self) -> None:
        """Recording is over: join the streams and drop what only recording needed."""
        if self.sealed:
            return
        self.sealed = True
        self._args_parts.append(bytearray(self._abuf))
        self._state_parts.append(bytearray(self._sbuf))
        self.args_stream = b"".join(self._args_parts)
        self.state_stream = b"".join(self._state_parts)
        self._join_columns()
        columns = self._columns
        for name, parts in zip(_GROWN, self._column_parts, strict=True):
            column: array[int] = getattr(columns, name)
            column.frombytes(b"".join(parts))
        self.pool_words.frombytes(b"".join(self._pool_words_parts))
        self.pool_pcodes.frombytes(b"".join(self._pool_pcodes_parts))
        self._column_parts = []
        self._pool_words_parts = []
        self._pool_pcodes_parts = []
        row_of = [-1] * (max(columns.st_id) + 1 if columns.st_id else 0)
        for row, sp_id in enumerate(columns.st_id.tolist()):
            row_of[sp_id] = row
        columns.row_of = array("q", row_of)
        self._args_parts = []
        self._state_parts = []
        self._abuf = []
        self._sbuf = []
        self._dirty = []
        self._is_dirty = []
        self._last_shape = {}
        self._shape_ids = {}
        self._node_path = []
        self._node_shapes = []
        self._path_ids = {}
        self._string_ids = {}
        self._parent_list_ids = {}
        self._role_ids = {}

    # -- reading --------------------------------------------------------------------------
    def _sealed_columns(self) -> _Columns:
        if not self.sealed:
            self.seal()
        return self._columns

    @property
    def block_offsets(self) -> array[int]:
        """Per BLOCK events, the offsets of its first event in the args and state streams."""
        return self._sealed_columns().block_offsets

    @property
    def action_first(self) -> array[int]:
        """Per action, the event it starts with."""
        return self._sealed_columns().action_first

    @property
    def boot_first(self) -> array[int]:
        """Per run of actions of one boot, its first action (boot_values: the boot)."""
        return self._sealed_columns().boot_first

    @property
    def boot_values(self) -> array[int]:
        return self._sealed_columns().boot_values

    @property
    def row_of(self) -> array[int]:
        """By sp id, the page's static row (-1: none); the st_* columns are by row."""
        return self._sealed_columns().row_of

    @property
    def st_id(self) -> array[int]:
        return self._sealed_columns().st_id

    @property
    def st_gfn(self) -> array[int]:
        return self._sealed_columns().st_gfn

    @property
    def st_l2_gfn(self) -> array[int]:
        return self._sealed_columns().st_l2_gfn

    @property
    def st_role(self) -> array[int]:
        """The page's role, an index into `roles`."""
        return self._sealed_columns().st_role

    @property
    def st_created(self) -> array[int]:
        """The event that first touched the page (the one that made it)."""
        return self._sealed_columns().st_created

    @property
    def n_actions(self) -> int:
        return self._n_actions

    def action_end(self, index: int) -> int:
        """The event after action `index`'s last (its [first, end) range)."""
        return self.action_first[index + 1] if index + 1 < self.n_actions else self.n_events

    def action_of_event(self, index: int) -> int:
        return bisect_right(self.action_first, index) - 1

    def boot_of_action(self, index: int) -> int:
        return self.boot_values[bisect_right(self.boot_first, index) - 1]

    def parents(self, pcode: int) -> Parents:
        if not pcode:
            return ()
        if pcode & 1:
            v = pcode >> 1
            return ((v >> 9, v & 0x1FF),)
        return self.parent_lists[(pcode >> 1) - 1]

    def static(self, sp_id: int) -> int:
        """The static row of `sp_id` (-1: the record never saw it)."""
        return self.row_of[sp_id] if 0 <= sp_id < len(self.row_of) else -1

    def _offsets(self, index: int) -> tuple[int, int]:
        """Offsets of event `index` in the args and state streams."""
        self.seal()
        block = index // BLOCK
        apos = self.block_offsets[2 * block]
        spos = self.block_offsets[2 * block + 1]
        for _ in range(block * BLOCK, index):
            apos = self._skip_args(apos)
            spos = self._skip_state(spos)
        return apos, spos

    def _skip_args(self, pos: int) -> int:
        data = self.args_stream
        shape_id, pos = _get(data, pos)
        for _ in self.shapes[shape_id][1]:
            pos = self._skip_value(data, pos)
        return pos

    def _skip_value(self, data: bytes, pos: int) -> int:
        v, pos = _get(data, pos)
        tag = v & 7
        if tag in (_LIST, _TUPLE):
            for _ in range(v >> 3):
                pos = self._skip_value(data, pos)
        elif tag == _FLOAT:
            pos += 8
        elif v == _WIDE_MARK:
            pos = self._skip_value(data, pos)
        return pos

    def _skip_state(self, pos: int) -> int:
        data = self.state_stream
        while True:
            code, pos = _get(data, pos)
            if not code:
                return pos
            if code < _PAGE_CODES:
                if (code - 1) & 3 == 3:
                    _, pos = _get(data, pos)
                continue
            mask = (code - _PAGE_CODES) & 3
            if mask & 1:
                _, pos = _get(data, pos)
            if mask & 2:
                _, pos = _get(data, pos)

    def _value(self, data: bytes, pos: int) -> tuple[object, int]:
        v, pos = _get(data, pos)
        tag = v & 7
        if tag == _INT:
            return _unzigzag(v >> 3), pos
        if tag == _NONE:
            if v == _WIDE_MARK:
                rest, pos = self._value(data, pos)
                if type(rest) is not int:
                    raise RunFormatError("a wide int argument is not followed by an int "
                                         "(corrupt)")
                return _WIDE + rest, pos
            return None, pos
        if tag == _TRUE:
            return True, pos
        if tag == _FALSE:
            return False, pos
        if tag == _STR:
            return self.strings[v >> 3], pos
        if tag == _FLOAT:
            return _DOUBLE.unpack_from(data, pos)[0], pos + 8
        items: list[object] = []
        for _ in range(v >> 3):
            item, pos = self._value(data, pos)
            items.append(item)
        return (items if tag == _LIST else tuple(items)), pos

    def event_at(self, apos: int) -> tuple[str, tuple[str, ...], dict[str, object], int]:
        """(kind, call path, args) of the event at args offset `apos`, and the next offset."""
        data = self.args_stream
        shape_id, pos = _get(data, apos)
        kind, keys, path_id = self.shapes[shape_id]
        args: dict[str, object] = {}
        for key in keys:
            value, pos = self._value(data, pos)
            args[key] = value
        return kind, self.paths[path_id], args, pos

    def kind_at(self, apos: int) -> tuple[str, int]:
        """The kind of the event at args offset `apos` (its arguments skipped, not decoded),
        and the next offset."""
        data = self.args_stream
        shape_id, pos = _get(data, apos)
        shape = self.shapes[shape_id]
        for _ in shape[1]:
            pos = self._skip_value(data, pos)
        return shape[0], pos

    def changes_at(self, spos: int) -> tuple[list[tuple[int, int, int, int]],
                                             list[tuple[int, int]], int]:
        """Page changes (sp id, mask, word, parent code) and counter deltas (index, delta)
        of the event at state offset `spos`, and the next offset.  mask bit 0: the word is
        new, bit 1: the parent code is new; mask 0: the page was freed."""
        data = self.state_stream
        changes: list[tuple[int, int, int, int]] = []
        deltas: list[tuple[int, int]] = []
        pos = spos
        while True:
            code, pos = _get(data, pos)
            if not code:
                return changes, deltas, pos
            if code < _PAGE_CODES:
                i, d, pos = _get_delta(data, pos, code)
                deltas.append((i, d))
                continue
            code -= _PAGE_CODES
            mask = code & 3
            word = 0
            pcode = 0
            if mask & 1:
                word, pos = _get(data, pos)
            if mask & 2:
                pcode, pos = _get(data, pos)
            changes.append((code >> 2, mask, word, pcode))

    def event(self, index: int) -> tuple[str, tuple[str, ...], dict[str, object],
                                         list[tuple[int, int, int, int]],
                                         list[tuple[int, int]]]:
        apos, spos = self._offsets(index)
        kind, path, args, _ = self.event_at(apos)
        changes, deltas, _ = self.changes_at(spos)
        return kind, path, args, changes, deltas

    def state_offset(self, index: int) -> int:
        return self._offsets(index)[1]

    def seek(self, op_step: int) -> tuple[PageStates, list[int]]:
        """Every page's state and every counter after `op_step` events."""
        self.seal()
        c = op_step // self.checkpoint_every
        full = c // FULL_EVERY
        directory = self.cp_full[full].tolist()
        patches = self.cp_patches
        for k in range(full * FULL_EVERY + 1, c + 1):
            for p in range(self.cp_patch_start[k - 1], self.cp_patch_start[k]):
                chunk = patches[2 * p]
                while chunk >= len(directory):
                    directory.append(-1)
                directory[chunk] = patches[2 * p + 1]
        n = len(self.counter_names)
        values = self.cp_counters[c * n:(c + 1) * n].tolist()
        states = PageStates(self, directory)
        pos = self.cp_state_offset[c]
        data = self.state_stream
        for _ in range(c * self.checkpoint_every, op_step):
            pos = self.apply(states, values, data, pos)
        return states, values

    def apply(self, states: PageStates, values: list[int], data: bytes, pos: int) -> int:
        """Apply the event at state offset `pos` to `states` and `values`; the next offset."""
        while True:
            code, pos = _get(data, pos)
            if not code:
                return pos
            if code < _PAGE_CODES:
                i, d, pos = _get_delta(data, pos, code)
                values[i] += d
                continue
            code -= _PAGE_CODES
            sp_id = code >> 2
            mask = code & 3
            if not mask:
                states.set(sp_id, 0, 0)
                continue
            word, pcode = states.get(sp_id)
            if mask & 1:
                word, pos = _get(data, pos)
            if mask & 2:
                pcode, pos = _get(data, pos)
            states.set(sp_id, word, pcode)

    def counters_after_actions(self) -> Iterator[list[int]]:
        """The counters at the end of each action, in order."""
        self.seal()
        n = len(self.counter_names)
        values = self.cp_counters[0:n].tolist()
        data = self.state_stream
        pos = 0
        index = 0
        for a in range(self.n_actions):
            end = self.action_end(a)
            while index < end:
                while True:
                    code, pos = _get(data, pos)
                    if not code:
                        break
                    if code < _PAGE_CODES:
                        i, d, pos = _get_delta(data, pos, code)
                        values[i] += d
                        continue
                    mask = (code - _PAGE_CODES) & 3
                    if mask & 1:
                        _, pos = _get(data, pos)
                    if mask & 2:
                        _, pos = _get(data, pos)
                index += 1
            yield list(values)

    # -- size and serialization ---------------------------------------------------------
    def _arrays(self) -> dict[str, array[int]]:
        columns = self._sealed_columns().as_dict()
        columns.update({
            "pool_words": self.pool_words, "pool_pcodes": self.pool_pcodes,
            "cp_counters": self.cp_counters, "cp_state_offset": self.cp_state_offset,
            "cp_patch_start": self.cp_patch_start, "cp_patches": self.cp_patches,
        })
        return columns

    def nbytes(self) -> int:
        """Bytes this record holds: its streams, columns and tables, as allocated."""
        self.seal()
        size = sys.getsizeof(self) + sys.getsizeof(self.args_stream) + sys.getsizeof(
            self.state_stream)
        for column in self._arrays().values():
            size += sys.getsizeof(column)
        size += sys.getsizeof(self.cp_full) + sum(sys.getsizeof(a) for a in self.cp_full)
        for table in (self.shapes, self.paths, self.strings, self.parent_lists, self.roles):
            size += _deep_size(table)
        return size

    def tables(self) -> dict[str, Any]:
        """The interned tables and scalars, as plain JSON-able data."""
        self.seal()
        return {
            "checkpoint_every": self.checkpoint_every, "n_events": self.n_events,
            "counter_names": list(self.counter_names),
            "shapes": [[k, list(keys), p] for k, keys, p in self.shapes],
            "paths": [list(p) for p in self.paths], "strings": self.strings,
            "parent_lists": [[list(pair) for pair in pl] for pl in self.parent_lists],
            "roles": [list(r) for r in self.roles], "n_full": len(self.cp_full),
        }

    def columns(self) -> dict[str, bytes]:
        """Every column as little-endian int64 bytes, and the two streams."""
        self.seal()
        out: dict[str, bytes] = {"args_stream": self.args_stream,
                                 "state_stream": self.state_stream}
        columns = dict(self._arrays())
        for i, full in enumerate(self.cp_full):
            columns[f"cp_full.{i}"] = full
        for name, column in columns.items():
            if sys.byteorder == "big":
                column = array("q", column)
                column.byteswap()
            out[name] = column.tobytes()
        return out

    @classmethod
    def from_parts(cls, tables: dict[str, Any], columns: dict[str, memoryview]
                   ) -> EventRecord:
        """The record that tables() and columns() describe (RunFormatError if they don't)."""
        names = tuple(str(n) for n in tables["counter_names"])
        n = len(names)
        record = cls([0] * n, int(tables["checkpoint_every"]))
        record.counter_names = names
        record.n_events = int(tables["n_events"])
        record.shapes = [(str(k), tuple(str(x) for x in keys), int(p))
                         for k, keys, p in tables["shapes"]]
        record.paths = [tuple(str(x) for x in p) for p in tables["paths"]]
        record.strings = [str(s) for s in tables["strings"]]
        record.parent_lists = [tuple((int(a), int(b)) for a, b in pl)
                               for pl in tables["parent_lists"]]
        record.roles = [(int(w), str(d), int(lv), bool(di), bool(g))
                        for w, d, lv, di, g in tables["roles"]]
        record.args_stream = bytes(columns["args_stream"])
        record.state_stream = bytes(columns["state_stream"])
        grown = record._columns
        grown.read(columns)
        record._n_actions = len(grown.action_first)
        record.pool_words = _int64s(columns["pool_words"])
        record.pool_pcodes = _int64s(columns["pool_pcodes"])
        record.cp_counters = _int64s(columns["cp_counters"])
        record.cp_state_offset = _int64s(columns["cp_state_offset"])
        record.cp_patch_start = _int64s(columns["cp_patch_start"])
        record.cp_patches = _int64s(columns["cp_patches"])
        record.cp_full = [_int64s(columns[f"cp_full.{i}"]) for i in range(int(tables["n_full"]))]
        record.sealed = True
        record._check()
        return record

    def _check(self) -> None:
        """Cross-check the columns' lengths so that a damaged record fails here, not later."""
        n_cps = len(self.cp_state_offset)
        n = len(self.counter_names)
        ok = (
            len(self.block_offsets) == 2 * ((self.n_events + BLOCK - 1) // BLOCK)
            and n_cps == self.n_events // self.checkpoint_every + 1
            and len(self.cp_counters) == n_cps * n
            and len(self.cp_patch_start) == n_cps
            and len(self.cp_full) == (n_cps - 1) // FULL_EVERY + 1
            and len(self.pool_words) == len(self.pool_pcodes)
            and len(self.pool_words) % CHUNK == 0
            and len(self.cp_patches) % 2 == 0
            and (not n_cps or self.cp_patch_start[-1] * 2 == len(self.cp_patches))
            and all(len(c) == len(self.st_id) for c in (self.st_gfn, self.st_l2_gfn,
                                                          self.st_role, self.st_created))
            and len(self.boot_first) == len(self.boot_values)
            and len(self.action_first) <= self.n_events
            and (not self.n_events or self.action_first[0] == 0)
            and all(0 <= b < len(self.action_first) for b in self.boot_first)
            and all(0 <= o <= len(self.state_stream) for o in self.cp_state_offset)
        )
        if not ok:
            raise RunFormatError("the run record's columns do not fit together (corrupt)")


def _join(parts: list[bytes], new: list[int]) -> None:
    """Move the ints of `new` to `parts`, packed as native int64s (as array("q") holds
    them).  struct converts them far faster than array.fromlist() and append() do (those
    parse every item with PyArg_Parse).  What this costs is per int (boxed when appended,
    converted, freed): joining every 16th checkpoint instead of every one saved nothing
    measurable recording populated-16g."""
    if new:
        parts.append(struct.pack(f"{len(new)}q", *new))
        new.clear()


def _int64s(data: memoryview) -> array[int]:
    column = array("q")
    if data.nbytes % column.itemsize:
        raise RunFormatError("a run record column is not a whole number of int64s (corrupt)")
    column.frombytes(data)
    if sys.byteorder == "big":
        column.byteswap()
    return column


def _deep_size(obj: object) -> int:
    size = sys.getsizeof(obj)
    if isinstance(obj, (list, tuple)):
        for item in obj:
            size += _deep_size(item)
    return size
