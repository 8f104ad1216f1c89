"""The binary container of a serialized run (Run.to_bytes / Run.from_bytes).

Layout, all integers little-endian::

    header   magic b"MMURUN\\r\\n" | u32 format version | u32 CRC-32 of the body | u64 body length
    body     sections, each: u16 name length | name (UTF-8) | u64 data length | data

The sections are named byte strings: a JSON section for the run's small fields and tables,
and the record's columns (int64 arrays and its two byte streams, record.py).  Bytes with
another magic, another version, a body of the wrong length or a CRC that does not match
are refused with RunFormatError before anything is decoded.
"""

from __future__ import annotations

import struct
import zlib

from .exceptions import RunFormatError

__all__ = ["FORMAT_VERSION", "MAGIC", "pack_sections", "unpack_sections"]

MAGIC = b"MMURUN\r\n"
# 2: one-byte counter deltas in the state stream (record._put_delta); 3: ints of 2**63 and
# more as record._WIDE_MARK and the rest (record._put_int), an event's counter deltas and
# page changes as one list in the state stream (record._PAGE_CODES).
FORMAT_VERSION = 3
_HEADER = struct.Struct("<8sIIQ")
_NAME = struct.Struct("<H")
_LENGTH = struct.Struct("<Q")


def pack_sections(sections: dict[str, bytes]) -> bytes:
    parts: list[bytes] = []
    for name, data in sections.items():
        encoded = name.encode()
        parts += [_NAME.pack(len(encoded)), encoded, _LENGTH.pack(len(data)), data]
    body = b"".join(parts)
    return _HEADER.pack(MAGIC, FORMAT_VERSION, zlib.crc32(body), len(body)) + body


def unpack_sections(data: bytes) -> dict[str, memoryview]:
    """The sections of a run file, checked against its header (RunFormatError if not)."""
    if len(data) < _HEADER.size:
        raise RunFormatError(f"truncated: {len(data)} bytes, shorter than the "
                             f"{_HEADER.size}-byte header of a run record")
    magic, version, crc, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise RunFormatError("not a run record (its first bytes are not the run magic)")
    if version != FORMAT_VERSION:
        raise RunFormatError(f"run record format version {version}; this model reads "
                             f"version {FORMAT_VERSION} only")
    view = memoryview(data)[_HEADER.size:]
    if len(view) != length:
        raise RunFormatError(f"truncated or padded: the header says {length} bytes follow, "
                             f"{len(view)} do")
    if zlib.crc32(view) != crc:
        raise RunFormatError("corrupt: the run record's CRC-32 does not match its contents")
    sections: dict[str, memoryview] = {}
    pos = 0
    try:
        while pos < length:
            (n,) = _NAME.unpack_from(view, pos)
            name = bytes(view[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            (size,) = _LENGTH.unpack_from(view, pos)
            pos += 8
            if pos + size > length:
                raise RunFormatError(f"section {name!r} runs past the end of the record")
            sections[name] = view[pos:pos + size]
            pos += size
    except (struct.error, UnicodeDecodeError) as exc:
        raise RunFormatError(f"corrupt section table: {exc}") from None
    return sections
