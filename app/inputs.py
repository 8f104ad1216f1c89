"""Text a client sent, checked the same way wherever it arrives (query, form, JSON, plain text).

- bytes must be UTF-8 and a decoded string must hold no lone UTF-16 surrogate (JSON's
  "\\ud800" escape makes one): either is refused naming the field, never stored;
- parameter names are capped, so an error message echoing one stays small;
- a digit that is not an ASCII digit (full-width U+FF17, Arabic-Indic U+0667) is refused: Python's
  int() would read it as 7, a value the URL does not show.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from fastapi import Request

from app.errors import ViewError, clip

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_QUERY_BYTES",
    "check_query",
    "check_text",
    "decode_utf8",
    "parse_urlencoded",
]

MAX_NAME_CHARS = 64
MAX_QUERY_BYTES = 8192
_FREE_TEXT = frozenset({"name"})  # a trace's name may hold any digits


def decode_utf8(field: str, data: bytes) -> str:
    """`data` as UTF-8, or a ViewError naming `field` and the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ViewError(field, f"{field} is not UTF-8 text (byte {exc.start} is "
                        f"{data[exc.start]:#04x})") from None


def check_text(field: str, value: str) -> str:
    """`value` unchanged if it encodes as UTF-8, else a ViewError naming `field`."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(value[exc.start])
        raise ViewError(field, f"{field} holds a lone UTF-16 surrogate (U+{bad:04X}) at "
                        f"character {exc.start}: send UTF-8 text") from None
    return value


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME_CHARS:
        raise ViewError(clip(name, 40), f"a parameter name is {len(name):,} characters long; "
                        f"the limit is {MAX_NAME_CHARS}")


def _check_digits(name: str, value: str) -> None:
    for i, ch in enumerate(value):
        if ch.isdigit() and not ch.isascii():
            raise ViewError(name, f"{name}: character {i} ({ch!r}, U+{ord(ch):04X}) is not an "
                            "ASCII digit; write numbers with 0-9")


def parse_urlencoded(raw: bytes, *, max_fields: int = 100) -> list[tuple[str, str]]:
    """`a=1&b=2` as (name, value) pairs, each checked; '+' is a space, as in HTML forms."""
    pairs: list[tuple[str, str]] = []
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        if len(pairs) >= max_fields:
            raise ViewError("request", f"more than {max_fields} fields")
        name_raw, _, value_raw = chunk.partition(b"=")
        name = decode_utf8("parameter name", unquote_to_bytes(name_raw.replace(b"+", b" ")))
        _check_name(name)
        value = decode_utf8(name, unquote_to_bytes(value_raw.replace(b"+", b" ")))
        pairs.append((name, value))
    return pairs


def check_query(request: Request) -> None:
    """FastAPI dependency of every route: the query string passes the checks above.

    Starlette decodes a query with errors="replace", so a bad byte would reach a handler as
    U+FFFD; this reads the raw query string instead.
    """
    raw: bytes = request.scope.get("query_string", b"")
    if len(raw) > MAX_QUERY_BYTES:
        raise ViewError("request", f"the query string is {len(raw):,} bytes; the limit is "
                        f"{MAX_QUERY_BYTES:,}", status=414)
    for name, value in parse_urlencoded(raw, max_fields=200):
        if name not in _FREE_TEXT:
            _check_digits(name, value)
