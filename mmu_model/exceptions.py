"""Errors raised by the model.

MmuModelError
 ├── InvalidSpec        a scenario spec field is out of range or unknown (names the field)
 ├── UnknownScenario    no built-in scenario has that name
 ├── UnknownFix         no fix toggle has that name
 ├── StepOutOfRange     a timeline position past the end (or negative)
 ├── RecordError        an event the run record cannot store (an argument type, a field's range)
 ├── RunFormatError     bytes that are not a run this model can read (foreign, truncated, corrupt)
 └── TraceParseError    a trace line does not parse (names the line number)
     └── TraceTooLarge  the trace exceeds the stated size or line limit
"""

from __future__ import annotations

__all__ = [
    "InvalidSpec",
    "MmuModelError",
    "RecordError",
    "RunFormatError",
    "StepOutOfRange",
    "TraceParseError",
    "TraceTooLarge",
    "UnknownFix",
    "UnknownScenario",
]


class MmuModelError(Exception):
    """Base of every error the model raises on bad input."""


class InvalidSpec(MmuModelError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownScenario(MmuModelError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown scenario {name!r}; known: {', '.join(known)}")
        self.field = "scenario"
        self.name = name


class UnknownFix(MmuModelError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown fix {name!r}; known: {', '.join(known)}")
        self.field = "fix"
        self.name = name


class StepOutOfRange(MmuModelError):
    def __init__(self, step: int, last: int) -> None:
        super().__init__(f"step {step} is out of range: valid steps are 0..{last}")
        self.field = "step"
        self.step = step
        self.last = last


class RecordError(MmuModelError):
    """The run record cannot store an event (a bug in the model, not bad user input)."""


class RunFormatError(MmuModelError):
    """Run.from_bytes() got bytes that are not a run of this format version."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = "run"
        self.message = message


class TraceParseError(MmuModelError):
    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}" if lineno else message)
        self.field = "trace"
        self.lineno = lineno
        self.message = message


class TraceTooLarge(TraceParseError):
    pass
