"""Parser for the ``kvm_mmu_track_write()`` debug trace of the seed patch series.

The series "KVM: x86/mmu: Plug an unsync shadow page leak" shows L0 KVM's view
of an L1 hypervisor tearing down its EPT tables, one emulated write per line::

    gpa = 107407000, old = 800000010741bd07, new = 8000000000000000, level = 3, flood = 0

What each field means for the model:

* ``gpa``   -- hex L1 guest-physical address that was written: the gfn of the
  write-tracked L1 EPT table page (``gpa >> 12``) plus the byte offset of the
  8-byte entry in it (entry index = ``(gpa & 0xfff) // 8``).
* ``old``   -- hex 64-bit EPT entry before the write. If present (any of RWX,
  bits 0..2) and not a leaf, bits 12..51 are the gfn of the child table, whose
  shadow page the write orphans.
* ``new``   -- hex 64-bit value written (the seed traces write non-present
  values, i.e. they zap entries).
* ``level`` -- decimal 1..5: level of the L0 shadow page that shadows the
  written table (level 1 tables hold 4KiB leaf entries).
* ``flood`` -- decimal >= 0: that shadow page's ``write_flooding_count``
  before this write; KVM zaps the page once the count reaches 3.

Anything before ``gpa =`` on a line (trace-cmd or dmesg prefixes) is ignored,
as are blank lines and ``#`` comment lines. Hex values may carry ``0x`` and use
either case. Fields must appear in the order above, comma separated, with
nothing after ``flood``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass

from mmu_model.exceptions import TraceParseError, TraceTooLarge

__all__ = [
    "MAX_TRACE_BYTES",
    "MAX_TRACE_LINES",
    "ParsedTrace",
    "TraceLine",
    "count_trace_lines",
    "parse_trace",
    "trace_digest",
]

MAX_TRACE_BYTES = 1_048_576
MAX_TRACE_LINES = 100_000

_GPA_LIMIT = 1 << 52
_U64_LIMIT = 1 << 64
_FLOOD_MAX = 1 << 31
_GFN_MASK = (1 << 40) - 1

_FORMAT = "gpa = HEX, old = HEX, new = HEX, level = N, flood = N"
_NO_RECORDS = f"no trace records found: expected lines like {_FORMAT!r}"

# Field names in their required order, with the placeholder shown in messages.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("gpa", "HEX"),
    ("old", "HEX"),
    ("new", "HEX"),
    ("level", "N"),
    ("flood", "N"),
)
_FIELD_HEADS = {name: re.compile(rf"{name}\s*=\s*") for name, _ in _FIELDS}

_GPA_START = re.compile(r"(?<![A-Za-z0-9_])gpa\s*=")
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)")
_DEC = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"[^,\s=]*")

_SHOWN_CHARS = 80
_MAX_STARTS = 4


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One emulated write by L1 to a write-tracked EPT table page."""

    lineno: int
    gpa: int
    old: int
    new: int
    level: int
    flood: int

    @property
    def gfn(self) -> int:
        """Gfn of the L1 EPT table page that was written."""
        return self.gpa >> 12

    @property
    def index(self) -> int:
        """Index (0..511) of the 8-byte entry written within that table."""
        return (self.gpa & 0xFFF) // 8

    @property
    def old_present(self) -> bool:
        """The old EPT entry was present: any of R, W, X (bits 0..2) set."""
        return bool(self.old & 0b111)

    @property
    def old_child_gfn(self) -> int:
        """Bits 12..51 of the old entry: the child table (or page) gfn."""
        return (self.old >> 12) & _GFN_MASK

    @property
    def old_is_leaf(self) -> bool:
        """The old entry maps memory rather than a table.

        Level 1 entries are always leaves; above that, bit 7 marks a huge page.
        Only meaningful when ``old_present``.
        """
        return self.level == 1 or bool(self.old & 0x80)


@dataclass(frozen=True, slots=True)
class ParsedTrace:
    """The records of a trace, and one warning per line skipped in lenient mode."""

    lines: tuple[TraceLine, ...]
    warnings: tuple[str, ...]


def _shown(text: str) -> str:
    """Text for an error message, cut to at most 80 characters."""
    if len(text) > _SHOWN_CHARS:
        return text[: _SHOWN_CHARS - 3] + "..."
    return text


def _rest(line: str, pos: int) -> str:
    """What follows ``pos`` on the line, for an error message."""
    return _shown(line[pos : pos + _SHOWN_CHARS + 1]) or "end of line"


def _hex_value(name: str, token: str) -> int:
    if not token:
        raise ValueError(f"{name} has no value; expected a hex number")
    m = _HEX.fullmatch(token)
    if m is None:
        raise ValueError(f"{name} must be a hex number, got {_shown(token)!r}")
    return int(m.group(1), 16)


def _dec_value(name: str, token: str, low: int, high: int) -> int:
    if not token:
        raise ValueError(f"{name} has no value; expected a decimal number")
    if _DEC.fullmatch(token) is None:
        raise ValueError(f"{name} must be a decimal number, got {_shown(token)!r}")
    digits = token.lstrip("0") or "0"
    # Length check first: int() refuses very long decimal strings.
    if len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {_shown(digits)}")
    return int(digits)


def _skip_space(line: str, pos: int) -> int:
    while pos < len(line) and line[pos].isspace():
        pos += 1
    return pos


def _split_fields(line: str, start: int) -> list[str]:
    """Cut the five value tokens out of ``line``, whose ``gpa =`` starts at ``start``.

    Raises ValueError naming the first structural problem.
    """
    tokens: list[str] = []
    pos = start
    prev = ""
    for i, (name, placeholder) in enumerate(_FIELDS):
        head = _FIELD_HEADS[name].match(line, pos)
        if head is None:
            raise ValueError(
                f"expected '{name} = {placeholder}' after the {prev} value, got: {_rest(line, pos)}"
            )
        token = _TOKEN.match(line, head.end())
        assert token is not None  # the pattern matches the empty string
        tokens.append(token.group())
        pos = _skip_space(line, token.end())
        if i == len(_FIELDS) - 1:
            if pos < len(line):
                raise ValueError(f"unexpected text after the flood value: {_rest(line, pos)!r}")
            break
        if pos >= len(line) or line[pos] != ",":
            raise ValueError(f"expected ',' after the {name} value, got: {_rest(line, pos)}")
        pos = _skip_space(line, pos + 1)
        prev = name
    return tokens


def _parse_record(lineno: int, line: str) -> TraceLine:
    """Parse one non-blank, non-comment line (trailing whitespace already gone)."""
    # A prefix may itself contain "gpa="; the first few candidates that give a
    # complete record win (bounded, so a hostile line cannot cost quadratic time).
    starts = [m.start() for m in itertools.islice(_GPA_START.finditer(line), _MAX_STARTS)]
    if not starts:
        raise ValueError(f"expected {_FORMAT!r}, got: {_shown(line.lstrip())}")
    tokens: list[str] | None = None
    first_error: ValueError | None = None
    for start in starts:
        try:
            tokens = _split_fields(line, start)
            break
        except ValueError as exc:
            if first_error is None:
                first_error = exc
    if tokens is None:
        assert first_error is not None
        raise first_error

    gpa = _hex_value("gpa", tokens[0])
    if gpa >= _GPA_LIMIT:
        raise ValueError(f"gpa {_shown(f'{gpa:#x}')} is beyond 52 bits")
    if gpa % 8:
        raise ValueError(f"gpa must be 8-byte aligned for a 64-bit EPT entry write, got {gpa:#x}")
    old = _hex_value("old", tokens[1])
    if old >= _U64_LIMIT:
        raise ValueError(f"old {_shown(f'{old:#x}')} does not fit in 64 bits")
    new = _hex_value("new", tokens[2])
    if new >= _U64_LIMIT:
        raise ValueError(f"new {_shown(f'{new:#x}')} does not fit in 64 bits")
    level = _dec_value("level", tokens[3], 1, 5)
    flood = _dec_value("flood", tokens[4], 0, _FLOOD_MAX)
    return TraceLine(lineno=lineno, gpa=gpa, old=old, new=new, level=level, flood=flood)


def _physical_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # text ends with a newline (or is empty)
    return lines


def count_trace_lines(text: str) -> int:
    """The number of lines in a trace as parse_trace() numbers them: a final newline ends
    the last line rather than starting one (so "a\nb\n" has 2, "" has 0)."""
    return len(_physical_lines(text))


def parse_trace(text: str, *, lenient: bool = False) -> ParsedTrace:
    """Parse a ``kvm_mmu_track_write()`` trace.

    Raises TraceTooLarge if ``text`` exceeds MAX_TRACE_BYTES (UTF-8) or
    MAX_TRACE_LINES, in either mode. A malformed line raises TraceParseError
    naming its 1-based line number, unless ``lenient``, in which case it is
    skipped with a warning. A trace without any record raises TraceParseError
    (line 0) in either mode.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TRACE_BYTES:
        raise TraceTooLarge(
            0, f"trace is {size} bytes; the limit is {MAX_TRACE_BYTES} bytes (1 MiB)"
        )
    physical = _physical_lines(text)
    if len(physical) > MAX_TRACE_LINES:
        raise TraceTooLarge(
            0, f"trace has {len(physical)} lines; the limit is {MAX_TRACE_LINES} lines"
        )

    records: list[TraceLine] = []
    warnings: list[str] = []
    for lineno, raw in enumerate(physical, start=1):
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            records.append(_parse_record(lineno, line))
        except ValueError as exc:
            if not lenient:
                raise TraceParseError(lineno, str(exc)) from None
            warnings.append(f"line {lineno} skipped: {exc}")
    if not records:
        raise TraceParseError(0, _NO_RECORDS)
    return ParsedTrace(lines=tuple(records), warnings=tuple(warnings))


def trace_digest(text: str) -> str:
    """Sha256 hex id of ``text``, stable under CRLF vs LF, trailing whitespace
    on lines and trailing blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    normalised = "\n".join(lines)
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()
