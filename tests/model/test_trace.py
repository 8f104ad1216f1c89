"""Behaviour of the kvm_mmu_track_write() trace parser (mmu_model.trace)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmu_model.exceptions import TraceParseError, TraceTooLarge
from mmu_model.trace import (
    MAX_TRACE_BYTES,
    MAX_TRACE_LINES,
    ParsedTrace,
    TraceLine,
    parse_trace,
    trace_digest,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PACKAGE_DATA = Path(__file__).resolve().parents[2] / "mmu_model" / "data"
SEED_NAMES = ("seed-top-down.trace", "seed-bottom-up.trace")

GOOD = "gpa = 107407000, old = 800000010741bd07, new = 8000000000000000, level = 3, flood = 0"


def _read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _fields(rec: TraceLine) -> tuple[int, int, int, int, int]:
    return (rec.gpa, rec.old, rec.new, rec.level, rec.flood)


# --- the seed traces from the patch thread ---------------------------------------


def test_top_down_seed_has_eleven_records_starting_at_line_two() -> None:
    """The cover letter lists 11 top-down writes; line 1 of the fixture is a comment."""
    parsed = parse_trace(_read("seed-top-down.trace"))
    assert len(parsed.lines) == 11
    assert parsed.warnings == ()
    assert [r.lineno for r in parsed.lines] == list(range(2, 13))


def test_top_down_first_record_zaps_the_pointer_to_table_10741b() -> None:
    """First line: a level-3 write to entry 0 of gfn 0x107407 whose old entry points at 0x10741b."""
    first = parse_trace(_read("seed-top-down.trace")).lines[0]
    # "gpa = 107407000, old = 800000010741bd07, new = 8000000000000000, level = 3, flood = 0"
    assert _fields(first) == (0x107407000, 0x800000010741BD07, 0x8000000000000000, 3, 0)
    assert first.gfn == 0x107407  # 0x107407000 >> 12
    assert first.index == 0  # page offset 0x000
    # 0xd07: bits 0..2 (RWX) set, bit 7 clear -> present, points at a table.
    assert first.old_present
    assert not first.old_is_leaf
    # Bit 63 (suppress #VE) lies above bit 51, so it is masked out of the gfn.
    assert first.old_child_gfn == 0x10741B


def test_top_down_second_record_writes_into_the_orphaned_child() -> None:
    """Line 2 of the trace is a level-2 write to the table the first write unlinked."""
    lines = parse_trace(_read("seed-top-down.trace")).lines
    assert lines[1].gfn == lines[0].old_child_gfn == 0x10741B
    assert lines[1].level == 2
    # "gpa = 10741b008, ..., flood = 1": offset 8 is entry 1, flood counts up.
    assert (lines[2].index, lines[2].flood) == (1, 1)


def test_top_down_last_record_is_the_level_4_write_to_the_root_child() -> None:
    """Last line: a level-4 write whose old entry points at the first written table 0x107407."""
    last = parse_trace(_read("seed-top-down.trace")).lines[-1]
    # "gpa = 107408000, old = 8000000107407d07, new = 80000000000001a0, level = 4, flood = 0"
    assert _fields(last) == (0x107408000, 0x8000000107407D07, 0x80000000000001A0, 4, 0)
    assert last.lineno == 12
    assert last.old_child_gfn == 0x107407


def test_top_down_levels_match_the_thread() -> None:
    """Three level-3 zaps with two level-2 runs of 3 between them, then level 5 and 4."""
    levels = [r.level for r in parse_trace(_read("seed-top-down.trace")).lines]
    assert levels == [3, 2, 2, 2, 3, 2, 2, 2, 3, 5, 4]


def test_bottom_up_seed_has_43_records() -> None:
    """The thread lists 38 level-2, 3 level-3, then one level-5 and one level-4 write."""
    parsed = parse_trace(_read("seed-bottom-up.trace"))
    assert len(parsed.lines) == 43
    assert Counter(r.level for r in parsed.lines) == {2: 38, 3: 3, 5: 1, 4: 1}
    assert [r.level for r in parsed.lines[-5:]] == [3, 3, 3, 5, 4]
    assert [r.lineno for r in parsed.lines] == list(range(2, 45))


def test_bottom_up_first_and_last_records() -> None:
    """First and last bottom-up lines carry the values printed in the thread."""
    lines = parse_trace(_read("seed-bottom-up.trace")).lines
    # "gpa = 167939000, old = 800000011c8f4d07, new = 8000000000000000, level = 2, flood = 0"
    assert _fields(lines[0]) == (0x167939000, 0x800000011C8F4D07, 0x8000000000000000, 2, 0)
    assert lines[0].old_child_gfn == 0x11C8F4
    # "gpa = 1608a7000, old = 800000016864cd07, new = 80000000000001a0, level = 4, flood = 0"
    assert _fields(lines[-1]) == (0x1608A7000, 0x800000016864CD07, 0x80000000000001A0, 4, 0)
    assert lines[-1].lineno == 44


def test_bottom_up_upper_levels_point_at_tables_written_earlier() -> None:
    """The level-4 entry points at the level-3 table, the level-5 entry at the level-4 table."""
    lines = parse_trace(_read("seed-bottom-up.trace")).lines
    level3_gfns = {r.gfn for r in lines if r.level == 3}
    (level5,) = [r for r in lines if r.level == 5]
    (level4,) = [r for r in lines if r.level == 4]
    assert level3_gfns == {0x16864C}
    assert level4.old_child_gfn == 0x16864C
    assert level5.old_child_gfn == level4.gfn == 0x1608A7
    # The first level-3 write unlinks the first level-2 table written.
    assert lines[-5].old_child_gfn == lines[0].gfn == 0x167939


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_seed_write_zaps_a_present_non_leaf_entry(name: str) -> None:
    """Both seeds tear down tables: old entries are present tables, new values are not present."""
    for rec in parse_trace(_read(name)).lines:
        assert rec.old_present
        assert not rec.old_is_leaf
        assert rec.new & 0b111 == 0  # neither 0x8000000000000000 nor ...1a0 has R/W/X


@pytest.mark.parametrize("name", SEED_NAMES)
def test_package_data_copies_are_identical(name: str) -> None:
    """mmu_model/data ships byte-identical copies of the test fixtures."""
    assert (PACKAGE_DATA / name).read_bytes() == (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", SEED_NAMES)
def test_fixture_starts_with_a_comment_and_has_one_record_per_line(name: str) -> None:
    """Line 1 is '# ...' and every other line is a record beginning with 'gpa = '."""
    lines = _read(name).splitlines()
    assert lines[0].startswith("# ")
    assert all(line.startswith("gpa = ") for line in lines[1:])


# --- TraceLine properties ----------------------------------------------------------


def test_index_is_page_offset_over_eight() -> None:
    """gpa 0x112fb5ea0: page offset 0xea0 = 3744 bytes, i.e. entry 468."""
    rec = TraceLine(lineno=1, gpa=0x112FB5EA0, old=0, new=0, level=2, flood=0)
    assert rec.gfn == 0x112FB5
    assert rec.index == 3744 // 8 == 468


def test_present_means_any_of_rwx() -> None:
    """Each of R, W, X alone makes an entry present; bit 63 alone does not."""
    for bit in (1, 2, 4):
        assert TraceLine(1, 0, bit, 0, 2, 0).old_present
    assert not TraceLine(1, 0, 1 << 63, 0, 2, 0).old_present


def test_leaf_is_level_one_or_huge_page_bit() -> None:
    """Level-1 entries are leaves; above level 1 only bit 7 (page size) makes a leaf."""
    assert TraceLine(1, 0, 0x007, 0, 1, 0).old_is_leaf
    assert TraceLine(1, 0, 0x087, 0, 2, 0).old_is_leaf
    assert not TraceLine(1, 0, 0x007, 0, 2, 0).old_is_leaf


def test_child_gfn_is_bits_12_to_51() -> None:
    """Bits above 51 and below 12 do not leak into the child gfn."""
    old = (0xFFF << 52) | (0xABCDE << 12) | 0xFFF
    assert TraceLine(1, 0, old, 0, 2, 0).old_child_gfn == 0xABCDE


def test_records_are_immutable() -> None:
    """TraceLine is frozen: fields cannot be reassigned."""
    rec = TraceLine(1, 0, 0, 0, 1, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.level = 2  # type: ignore[misc]


# --- tolerated syntax --------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "qemu-kvm-1234  [003] ....  123.456789: kvm_mmu_track_write: " + GOOD,
        "[  12.345] " + GOOD,
        "   \t" + GOOD,
        GOOD + "   \t",
        GOOD + "\r",
        "gpa=0x107407000,old=0x800000010741BD07,new=0X8000000000000000,level=3,flood=0",
        "gpa  =  107407000 ,  old =800000010741bd07,\tnew= 8000000000000000 ,"
        " level = 3 , flood = 0",
        "gpa = 0000107407000, old = 800000010741BD07, new = 8000000000000000,"
        " level = 03, flood = 00",
    ],
)
def test_tolerated_variants_parse_to_the_same_record(line: str) -> None:
    """Prefixes, spacing, 0x, hex case, leading zeros and trailing CR/space all parse alike."""
    (rec,) = parse_trace(line).lines
    assert _fields(rec) == (0x107407000, 0x800000010741BD07, 0x8000000000000000, 3, 0)


def test_blank_and_comment_lines_are_ignored_but_counted() -> None:
    """Blank and '#' lines yield nothing yet still advance the 1-based line numbers."""
    text = f"# header\n\n   \n  # indented comment\n{GOOD}\n\t\n{GOOD}\n"
    parsed = parse_trace(text)
    assert [r.lineno for r in parsed.lines] == [5, 7]
    assert parsed.warnings == ()


def test_crlf_line_endings_parse() -> None:
    """Windows line endings count one line each and leave no CR in the values."""
    parsed = parse_trace(f"# c\r\n{GOOD}\r\n{GOOD}\r\n")
    assert [r.lineno for r in parsed.lines] == [2, 3]


# --- malformed lines ---------------------------------------------------------------

REC = "gpa = {gpa}, old = {old}, new = {new}, level = {level}, flood = {flood}"


def _rec(**over: str) -> str:
    values = {"gpa": "1000", "old": "7", "new": "0", "level": "3", "flood": "0"}
    values.update(over)
    return REC.format(**values)


MALFORMED = [
    ("hello world", "expected 'gpa = HEX, old = HEX, new = HEX, level = N, flood = N', got: hello"),
    ("x" * 200, "got: " + "x" * 77 + "..."),
    ("gpa = 1000", "expected ',' after the gpa value, got: end of line"),
    ("gpa = 1000, new = 0, level = 3, flood = 0", "expected 'old = HEX' after the gpa value"),
    ("gpa = 1000 old = 7, new = 0, level = 3, flood = 0", "expected ',' after the gpa value"),
    # "old = 7, " is taken as leading text, so the record then lacks its old field.
    ("old = 7, gpa = 1000, new = 0, level = 3, flood = 0", "expected 'old = HEX' after the gpa"),
    (_rec(level="7"), "level must be 1..5, got 7"),
    (_rec(level="0"), "level must be 1..5, got 0"),
    (_rec(level=""), "level has no value"),
    (_rec(level="3x"), "level must be a decimal number, got '3x'"),
    (_rec(flood="-1"), "flood must be a decimal number, got '-1'"),
    (_rec(flood=str(2**31 + 1)), f"flood must be 0..{2**31}, got {2**31 + 1}"),
    (_rec(flood="9" * 5000), "flood must be 0..2147483648, got 999"),
    (_rec(gpa="1003"), "gpa must be 8-byte aligned for a 64-bit EPT entry write, got 0x1003"),
    (_rec(gpa="10000000000000"), "gpa 0x10000000000000 is beyond 52 bits"),
    (_rec(gpa="0x"), "gpa must be a hex number, got '0x'"),
    (_rec(gpa="12g0"), "gpa must be a hex number, got '12g0'"),
    (_rec(old="1" + "0" * 16), "old 0x10000000000000000 does not fit in 64 bits"),
    (_rec(new="1" + "0" * 16), "new 0x10000000000000000 does not fit in 64 bits"),
    (_rec() + " trailing", "unexpected text after the flood value: 'trailing'"),
    (_rec() + ", extra = 1", "unexpected text after the flood value: ', extra = 1'"),
    ("GPA = 1000, old = 7, new = 0, level = 3, flood = 0", "expected 'gpa = HEX"),
]


@pytest.mark.parametrize(("line", "fragment"), MALFORMED)
def test_strict_mode_names_the_line_and_the_problem(line: str, fragment: str) -> None:
    """A bad line on physical line 3 raises TraceParseError for line 3 with a precise message."""
    text = f"{GOOD}\n# comment\n{line}\n{GOOD}\n"
    with pytest.raises(TraceParseError) as info:
        parse_trace(text)
    assert info.value.lineno == 3
    assert str(info.value).startswith("line 3: ")
    assert fragment in info.value.message


@pytest.mark.parametrize(("line", "fragment"), MALFORMED)
def test_lenient_mode_skips_the_line_with_a_warning(line: str, fragment: str) -> None:
    """The same bad line in lenient mode is dropped and reported as 'line 3 skipped: ...'."""
    parsed = parse_trace(f"{GOOD}\n# comment\n{line}\n{GOOD}\n", lenient=True)
    assert [r.lineno for r in parsed.lines] == [1, 4]
    (warning,) = parsed.warnings
    assert warning.startswith("line 3 skipped: ")
    assert fragment in warning


def test_error_message_truncates_long_lines_to_80_characters() -> None:
    """The echoed line in the generic message is at most 80 characters."""
    with pytest.raises(TraceParseError) as info:
        parse_trace("y" * 500)
    echoed = info.value.message.split("got: ", 1)[1]
    assert len(echoed) == 80


def test_lenient_warnings_follow_line_order() -> None:
    """Several bad lines give one warning each, in order, naming each line number."""
    text = "\n".join(["junk", GOOD, _rec(level="9"), "", _rec(gpa="4")])
    parsed = parse_trace(text, lenient=True)
    assert len(parsed.lines) == 1
    assert [w.split(":", 1)[0] for w in parsed.warnings] == [
        "line 1 skipped",
        "line 3 skipped",
        "line 5 skipped",
    ]


def test_strict_mode_reports_the_first_bad_line() -> None:
    """With several bad lines, strict mode stops at the first one."""
    with pytest.raises(TraceParseError) as info:
        parse_trace("\n".join([GOOD, _rec(level="9"), "junk"]))
    assert info.value.lineno == 2


NO_RECORDS = (
    "no trace records found: expected lines like "
    "'gpa = HEX, old = HEX, new = HEX, level = N, flood = N'"
)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   # another\n"])
@pytest.mark.parametrize("lenient", [False, True])
def test_trace_without_records_is_an_error(text: str, lenient: bool) -> None:
    """Nothing but blanks and comments is rejected (line 0) in both modes."""
    with pytest.raises(TraceParseError) as info:
        parse_trace(text, lenient=lenient)
    assert info.value.lineno == 0
    assert str(info.value) == NO_RECORDS


def test_lenient_trace_with_only_bad_lines_has_no_records() -> None:
    """If lenient mode skips every line there are no records, which is still an error."""
    with pytest.raises(TraceParseError) as info:
        parse_trace("junk\nmore junk\n", lenient=True)
    assert info.value.message == NO_RECORDS


# --- size limits -------------------------------------------------------------------


def _padded_to(n_bytes: int) -> str:
    """A valid one-record trace followed by a comment, exactly n_bytes of UTF-8."""
    head = GOOD + "\n#"
    return head + "p" * (n_bytes - len(head))


@pytest.mark.parametrize("lenient", [False, True])
def test_byte_limit_is_inclusive(lenient: bool) -> None:
    """Exactly 1 MiB parses; one byte more raises TraceTooLarge in either mode."""
    assert len(parse_trace(_padded_to(MAX_TRACE_BYTES), lenient=lenient).lines) == 1
    with pytest.raises(TraceTooLarge) as info:
        parse_trace(_padded_to(MAX_TRACE_BYTES + 1), lenient=lenient)
    assert info.value.lineno == 0
    assert info.value.message == (
        f"trace is {MAX_TRACE_BYTES + 1} bytes; the limit is 1048576 bytes (1 MiB)"
    )


def test_byte_limit_counts_utf8_bytes_not_characters() -> None:
    """'é' is two UTF-8 bytes, so half a MiB of them plus a record is over the limit."""
    text = GOOD + "\n#" + "é" * (MAX_TRACE_BYTES // 2)
    assert len(text) < MAX_TRACE_BYTES
    with pytest.raises(TraceTooLarge):
        parse_trace(text)


@pytest.mark.parametrize("lenient", [False, True])
def test_line_limit_is_inclusive(lenient: bool) -> None:
    """100 000 lines parse; 100 001 raise TraceTooLarge, even in lenient mode."""
    at_limit = GOOD + "\n" * MAX_TRACE_LINES  # record + 99 999 blank lines, final newline
    assert len(parse_trace(at_limit, lenient=lenient).lines) == 1
    with pytest.raises(TraceTooLarge) as info:
        parse_trace(at_limit + "\n", lenient=lenient)
    assert info.value.lineno == 0
    assert f"{MAX_TRACE_LINES + 1} lines" in info.value.message
    assert str(MAX_TRACE_LINES) in info.value.message


def test_too_large_is_a_parse_error() -> None:
    """Callers catching TraceParseError also catch the size-limit error."""
    assert issubclass(TraceTooLarge, TraceParseError)


# --- digest ------------------------------------------------------------------------


def test_digest_ignores_line_endings_trailing_space_and_trailing_blank_lines() -> None:
    """The same trace pasted with CRLF, trailing spaces or extra blank lines has one id."""
    base = _read("seed-top-down.trace")
    variants = [
        base,
        base.replace("\n", "\r\n"),
        base.replace("\n", "  \t\n"),
        base + "\n\n   \n",
        base.rstrip("\n"),
    ]
    assert len({trace_digest(v) for v in variants}) == 1


def test_digest_is_sha256_of_the_normalised_text() -> None:
    """The id is the sha256 hex of LF-joined, right-stripped lines without a final newline."""
    expected = hashlib.sha256(b"a\n\nb").hexdigest()
    assert trace_digest("a \r\n\r\nb\t\r\n\r\n") == expected


def test_digest_differs_for_different_traces() -> None:
    """Different content (or leading whitespace, which is kept) gives a different id."""
    a = _read("seed-top-down.trace")
    b = _read("seed-bottom-up.trace")
    assert trace_digest(a) != trace_digest(b)
    assert trace_digest(GOOD) != trace_digest(" " + GOOD)


# --- property: format then parse round-trips ---------------------------------------

_records = st.tuples(
    st.integers(0, (1 << 49) - 1).map(lambda q: q * 8),  # 8-byte aligned, < 2**52
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.integers(1, 5),
    st.integers(0, 1 << 31),
)
_space = st.sampled_from(["", " ", "  ", "\t"])
_prefix = st.sampled_from(
    ["", "  ", "[  12.345] ", "qemu-kvm-1234  [003] ....  123.456789: kvm_mmu_track_write: "]
)


@st.composite
def _formatted(draw: st.DrawFn, rec: tuple[int, int, int, int, int]) -> str:
    gpa, old, new, level, flood = rec

    def hx(value: int) -> str:
        digits = format(value, "X" if draw(st.booleans()) else "x")
        return draw(st.sampled_from(["", "0x", "0X"])) + digits

    def field(name: str, value: str) -> str:
        return f"{name}{draw(_space)}={draw(_space)}{value}"

    sep = draw(_space) + "," + draw(_space)
    body = sep.join(
        [
            field("gpa", hx(gpa)),
            field("old", hx(old)),
            field("new", hx(new)),
            field("level", str(level)),
            field("flood", str(flood)),
        ]
    )
    return draw(_prefix) + body + draw(st.sampled_from(["", " ", "\r", " \t"]))


@st.composite
def _trace(draw: st.DrawFn) -> tuple[str, list[tuple[int, tuple[int, int, int, int, int]]]]:
    records = draw(st.lists(_records, min_size=1, max_size=20))
    lines: list[str] = []
    expected: list[tuple[int, tuple[int, int, int, int, int]]] = []
    for rec in records:
        lines.extend(draw(st.lists(st.sampled_from(["", "  ", "# note", " # x"]), max_size=2)))
        lines.append(draw(_formatted(rec)))
        expected.append((len(lines), rec))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"])), expected


@given(_trace())
def test_formatted_random_records_round_trip(
    case: tuple[str, list[tuple[int, tuple[int, int, int, int, int]]]],
) -> None:
    """Any valid record, formatted in any tolerated style, parses back to itself and its line."""
    text, expected = case
    parsed = parse_trace(text)
    assert isinstance(parsed, ParsedTrace)
    assert [(r.lineno, _fields(r)) for r in parsed.lines] == expected
    assert parsed.warnings == ()
