"""What the web layer derives from a run once, as bytes: its index scan and its layout.

Both are pure functions of the run (mmu_model.run_scan.scan_run, app.graph.layout_for_run),
so they are worked out once, beside the run, and kept in the run store with it: the build
worker scans the run while the server loads it and lays it out (app/builds.py), and a
restart reads both back instead of working them out again (app/runs.py, RunEntry.part).

A part is a few named flat arrays (a small header of names, type codes and lengths, then
the arrays' bytes). Its name in the store carries PART_VERSION: a fingerprint of the
model and of the sources that compute and encode it, so a changed model or a changed
layout never reads an old part. A part that does not decode is a PartFormatError, and the
caller works the part out again.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import sys
from array import array
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from app.graph import Layout, layout_for_run
from app.run_store import model_fingerprint
from mmu_model import Run
from mmu_model.run_scan import RunScan, scan_run

if TYPE_CHECKING:
    from app.runs import RunEntry

__all__ = ["INDEX", "LAYOUT", "LAYOUT_BYTES_PER_PAGE", "SCAN_FIELDS", "PartFormatError",
           "decode_layout", "decode_scan", "encode_layout", "encode_scan", "layout_part",
           "part_version", "run_layout_of", "run_scan_of", "scan_part"]

log = logging.getLogger(__name__)

INDEX = "index"
LAYOUT = "layout"
# What a run's layout holds per page (its (x, y) and the slot x it was placed by):
# tracemalloc gave 250 bytes a page on the 100k-page spec.
LAYOUT_BYTES_PER_PAGE = 300
# The sources (beside the model's, which model_fingerprint covers) each part depends on.
_SOURCES: dict[str, tuple[str, ...]] = {INDEX: ("run_parts.py",),
                                        LAYOUT: ("run_parts.py", "graph.py")}
SCAN_FIELDS: dict[str, str] = {
    "leak": "q", "orphan": "q", "flood": "q", "teardown": "q", "boot": "q",
    "leak_actions": "q", "orphan_actions": "q", "loud_actions": "q",
    "touch_start": "i", "touch_events": "i",
}
_LAYOUT_FIELDS: dict[str, str] = {
    "slots": "q",
    "ids": "q", "x": "d", "y": "d", "y_int": "b",  # pos: sp id -> (x, y); y an int or not
    "xs_level": "q", "xs_gfn": "q", "xs_x": "d",  # the x of each range placed
}
_MAGIC = b"MMUPART1"
_HEAD = struct.Struct("<8sBH")  # magic, byte order (0 little, 1 big), number of arrays
_ITEM = struct.Struct("<B1sBQ")  # name length, type code, item size, number of items


class PartFormatError(ValueError):
    """Bytes that are not a part this code wrote."""


@cache
def part_version(part: str) -> str:
    """A short fingerprint of the model and of the sources `part` is computed by."""
    digest = hashlib.sha256(model_fingerprint().encode() + b"\0")
    here = Path(__file__).resolve().parent
    for name in _SOURCES[part]:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# -- named arrays --------------------------------------------------------------------------
def _encode(arrays: Mapping[str, array[int] | array[float]]) -> bytes:
    out = [_HEAD.pack(_MAGIC, sys.byteorder == "big", len(arrays))]
    for name, values in arrays.items():
        raw = name.encode()
        out.append(_ITEM.pack(len(raw), values.typecode.encode(), values.itemsize,
                              len(values)) + raw)
    out.extend(values.tobytes() for values in arrays.values())
    return b"".join(out)


def _decode(data: bytes, fields: Mapping[str, str]) -> dict[str, array[int] | array[float]]:
    """The arrays of `fields` (name -> type code), exactly those, or PartFormatError."""
    view = memoryview(data)
    try:
        magic, big, count = _HEAD.unpack_from(view, 0)
        if magic != _MAGIC:
            raise PartFormatError("not a run part")
        at = _HEAD.size
        heads = []
        for _ in range(count):
            n_name, code, size, n = _ITEM.unpack_from(view, at)
            at += _ITEM.size
            heads.append((bytes(view[at:at + n_name]).decode(), code.decode(), size, n))
            at += n_name
    except (struct.error, UnicodeDecodeError) as exc:
        raise PartFormatError(f"a truncated or foreign header: {exc}") from None
    if {name: code for name, code, _, _ in heads} != dict(fields):
        raise PartFormatError("other arrays than this part has")
    out: dict[str, array[int] | array[float]] = {}
    for name, code, size, n in heads:
        values: array[int] | array[float] = array(code)
        if values.itemsize != size or at + size * n > len(data):
            raise PartFormatError(f"{name}: a truncated array or another item size")
        values.frombytes(view[at:at + size * n])
        at += size * n
        if bool(big) != (sys.byteorder == "big"):
            values.byteswap()
        out[name] = values
    if at != len(data):
        raise PartFormatError("bytes after the last array")
    return out


# -- the index scan ------------------------------------------------------------------------
def encode_scan(scan: RunScan) -> bytes:
    return _encode({name: getattr(scan, name) for name in SCAN_FIELDS})


def decode_scan(data: bytes) -> dict[str, array[int]]:
    """The scan's arrays by name (RunScan's attribute names, SCAN_FIELDS)."""
    arrays = _decode(data, SCAN_FIELDS)
    start = arrays["touch_start"]
    if len(start) and (start[0] != 0 or start[-1] != len(arrays["touch_events"])):
        raise PartFormatError("touch_start does not cover touch_events")
    return arrays  # type: ignore[return-value]


def scan_part(run: Run) -> bytes:
    """The run's index scan, encoded (what the build worker sends after the run)."""
    timeline = run.timeline
    if timeline is None:
        raise ValueError("the run was not recorded")
    return encode_scan(scan_run(timeline.events))


# -- the layout ------------------------------------------------------------------------------
def encode_layout(layout: Layout) -> bytes:
    pos = layout.pos
    ys = [y for _, y in pos.values()]
    ranges = layout._xs
    return _encode({
        "slots": array("q", layout.slots),
        "ids": array("q", pos.keys()),
        "x": array("d", [x for x, _ in pos.values()]),
        "y": array("d", ys),
        "y_int": array("b", [type(y) is int for y in ys]),
        "xs_level": array("q", [level for level, _ in ranges]),
        "xs_gfn": array("q", [gfn for _, gfn in ranges]),
        "xs_x": array("d", ranges.values()),
    })


def decode_layout(data: bytes) -> Layout:
    a = _decode(data, _LAYOUT_FIELDS)
    n, m = len(a["ids"]), len(a["xs_x"])
    if not (len(a["x"]) == len(a["y"]) == len(a["y_int"]) == n
            and len(a["xs_level"]) == len(a["xs_gfn"]) == m):
        raise PartFormatError("columns of different lengths")
    ys = [int(y) if flag else y for y, flag in zip(a["y"], a["y_int"], strict=True)]
    layout = Layout(tuple(a["slots"]))  # type: ignore[arg-type]
    layout.pos.update(zip(a["ids"], zip(a["x"], ys, strict=True), strict=True))  # type: ignore[arg-type]
    layout._xs.update(zip(zip(a["xs_level"], a["xs_gfn"], strict=True), a["xs_x"],  # type: ignore[arg-type]
                          strict=True))
    return layout


def layout_part(run: Run) -> tuple[Layout, bytes]:
    layout = layout_for_run(run)
    return layout, encode_layout(layout)


# -- a cached run's parts ----------------------------------------------------------------
_Part = TypeVar("_Part")


def _stored(entry: RunEntry, name: str, decode: Callable[[bytes], _Part]) -> _Part | None:
    """The part `name` as the run store (or the build worker) gave it, decoded; None when
    there is none or it does not decode (then it is worked out again)."""
    data = entry.part(name)
    if data is None:
        return None
    try:
        return decode(data)
    except PartFormatError as exc:
        log.warning("the stored %s of %s does not decode (%s): working it out again",
                    name, entry.key, exc)
        return None


def run_scan_of(entry: RunEntry) -> dict[str, array[int]]:
    """The run's index scan (SCAN_FIELDS): from its build worker or the run store, else
    scanned now (and kept in the store)."""
    stored = _stored(entry, INDEX, decode_scan)
    if stored is not None:
        return stored
    timeline = entry.run.timeline
    if timeline is None:
        raise ValueError("the run was not recorded")
    scan = scan_run(timeline.events)
    if entry.keep_part is not None:
        entry.keep_part(INDEX, encode_scan(scan))
    return {name: getattr(scan, name) for name in SCAN_FIELDS}


def run_layout_of(entry: RunEntry) -> Layout:
    """The run's layout, kept with the cached run (weighed there): the run store's, else
    laid out now (and kept in the store)."""
    def build() -> Layout:
        stored = _stored(entry, LAYOUT, decode_layout)
        if stored is not None:
            return stored
        layout, data = layout_part(entry.run)
        if entry.keep_part is not None:
            entry.keep_part(LAYOUT, data)
        return layout

    layout: Layout = entry.derive(LAYOUT, build,
                                  lambda value: len(value.pos) * LAYOUT_BYTES_PER_PAGE)
    return layout
