"""Model of L0 KVM's x86 shadow MMU while it shadows an L1 hypervisor's EPT tables.

Public surface (everything the web layer and the CLI use)::

    spec = get_scenario("teaching-small").spec      # or ScenarioSpec(...) / from_mapping()
    run = run_scenario(spec)                        # or replay_trace(text)
    snap = run.snapshot(step, "action")             # immutable views of the shadow pages
"""

from .exceptions import (
    InvalidSpec,
    MmuModelError,
    RecordError,
    RunFormatError,
    StepOutOfRange,
    TraceParseError,
    TraceTooLarge,
    UnknownFix,
    UnknownScenario,
)
from .fixes import DEFAULT_FIXES, FIXES, Fix, FixSet, resolve_fixes
from .invariants import check_invariants
from .kvm import Kvm
from .page import KvmMmuPage
from .replay import replay_parsed, replay_trace
from .role import KvmMmuPageRole
from .run import BootStats, Discrepancy, ReplayReport, Run
from .scenario import BUILTINS, ScenarioInfo, ScenarioSpec, get_scenario, list_scenarios
from .simulate import run_scenario
from .snapshot import ActionView, EventView, Grain, OrphanSummary, Snapshot, SpView
from .stats import DISPLAY_ORDER, STAT_NAMES
from .trace import MAX_TRACE_BYTES, MAX_TRACE_LINES, parse_trace, trace_digest

__all__ = [
    "BUILTINS",
    "DEFAULT_FIXES",
    "DISPLAY_ORDER",
    "FIXES",
    "MAX_TRACE_BYTES",
    "MAX_TRACE_LINES",
    "STAT_NAMES",
    "ActionView",
    "BootStats",
    "Discrepancy",
    "EventView",
    "Fix",
    "FixSet",
    "Grain",
    "InvalidSpec",
    "Kvm",
    "KvmMmuPage",
    "KvmMmuPageRole",
    "MmuModelError",
    "OrphanSummary",
    "RecordError",
    "ReplayReport",
    "Run",
    "RunFormatError",
    "ScenarioInfo",
    "ScenarioSpec",
    "Snapshot",
    "SpView",
    "StepOutOfRange",
    "TraceParseError",
    "TraceTooLarge",
    "UnknownFix",
    "UnknownScenario",
    "check_invariants",
    "get_scenario",
    "list_scenarios",
    "parse_trace",
    "replay_parsed",
    "replay_trace",
    "resolve_fixes",
    "run_scenario",
    "trace_digest",
]


def run_named(name: str, *, fixes: frozenset[str] | None = None, record: bool = True) -> Run:
    """Run a built-in scenario by name (simulation or seed-trace replay)."""
    from importlib import resources

    info = get_scenario(name)
    if info.kind == "replay":
        assert info.trace_file is not None
        text = resources.files("mmu_model").joinpath("data", info.trace_file).read_text()
        return replay_trace(text, fixes=DEFAULT_FIXES if fixes is None else fixes,
                            record=record)
    assert info.spec is not None
    spec = info.spec if fixes is None else info.spec.replace(fixes=fixes)
    return run_scenario(spec, record=record)


__all__ += ["run_named"]
