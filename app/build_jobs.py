"""What to build: picklable descriptions of a run, sent to a build worker and named in the
run store.

Each job knows its in-memory cache key, its store digest (the canonical description plus
the model fingerprint) and its cost, and building it is calling it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mmu_model import Run, ScenarioSpec, replay_trace, run_scenario
from mmu_model.cost import SECONDS_PER_EVENT, check_cost

__all__ = ["BuildJob", "ScenarioBuild", "SeedTraceBuild", "TraceBuild"]

# A trace replays about one event per line or two: estimated seconds for Retry-After.
_SECONDS_PER_TRACE_LINE = 4 * SECONDS_PER_EVENT


class BuildJob(ABC):
    record: bool

    @abstractmethod
    def __call__(self) -> Run:
        """Build the run (in a build worker)."""

    @property
    @abstractmethod
    def key(self) -> Hashable:
        """The in-memory cache key."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything the run depends on besides the model, as plain JSON data."""

    def check(self, max_events: int) -> float:
        """Estimated build seconds; InvalidSpec if the build is over the limit."""
        del max_events
        return 0.0

    def digest(self, model: str) -> str:
        text = json.dumps({"build": self.describe(), "model": model}, sort_keys=True,
                          separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ScenarioBuild(BuildJob):
    spec: ScenarioSpec  # with its fixes
    record: bool = True

    def __call__(self) -> Run:
        return run_scenario(self.spec, record=self.record)

    @property
    def key(self) -> Hashable:
        return ("spec", self.spec, self.record)

    def describe(self) -> dict[str, Any]:
        return {"kind": "simulate", "spec": self.spec.to_mapping(),
                "fixes": sorted(self.spec.fixes), "record": self.record}

    def check(self, max_events: int) -> float:
        return check_cost(self.spec, max_events).seconds


@dataclass(frozen=True)
class TraceBuild(BuildJob):
    """A stored (uploaded) trace, replayed; trace_id is the sha256 of its text."""

    trace_id: str
    text: str
    fixes: frozenset[str]
    lenient: bool = False
    record: bool = True

    def __call__(self) -> Run:
        return replay_trace(self.text, fixes=self.fixes, lenient=self.lenient,
                            record=self.record)

    @property
    def key(self) -> Hashable:
        return ("trace", self.trace_id, self.fixes, self.lenient, self.record)

    def describe(self) -> dict[str, Any]:
        return {"kind": "trace", "trace": self.trace_id, "fixes": sorted(self.fixes),
                "lenient": self.lenient, "record": self.record}

    def check(self, max_events: int) -> float:
        del max_events  # bounded by the trace size limits (MAX_TRACE_LINES)
        return self.text.count("\n") * _SECONDS_PER_TRACE_LINE


@dataclass(frozen=True)
class SeedTraceBuild(BuildJob):
    """One of the model's own seed traces (mmu_model/data), replayed."""

    trace_file: str
    fixes: frozenset[str]
    record: bool = True

    def __call__(self) -> Run:
        text = resources.files("mmu_model").joinpath("data", self.trace_file).read_text()
        return replay_trace(text, fixes=self.fixes, record=self.record)

    @property
    def key(self) -> Hashable:
        return ("replay", self.trace_file, self.fixes, self.record)

    def describe(self) -> dict[str, Any]:
        return {"kind": "replay", "trace_file": self.trace_file, "fixes": sorted(self.fixes),
                "record": self.record}
