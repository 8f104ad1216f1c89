"""URL view state -> every run a view needs, loaded before anything renders.

A view names a source (a built-in scenario with spec overrides, a replayed seed trace, or an
uploaded trace) and fixes; resolving it loads (or reuses) the run from the run cache and
takes its snapshot at the view's step. A page also needs, in compare mode, the baseline run
at the same moment, and for the tree's delta the view the browser has drawn; /boots needs
the run without and with track-write-zap. Nothing here renders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

from app.build_jobs import BuildJob, ScenarioBuild, SeedTraceBuild, TraceBuild
from app.errors import ViewError
from app.fixsets import TRACK_WRITE_ZAP, counterpart
from app.runs import RunEntry
from app.services import Services
from app.store import StoredTrace
from app.viewstate import SPEC_FIELDS, ViewState, parse_query
from mmu_model import (
    MmuModelError,
    Run,
    ScenarioInfo,
    ScenarioSpec,
    Snapshot,
    get_scenario,
)
from mmu_model.snapshot import StepSummary

__all__ = [
    "Baseline",
    "PageRuns",
    "Resolved",
    "Source",
    "boot_variants",
    "drawn_view",
    "resolve",
    "resolve_page",
    "run_entry",
    "source_of",
]

@dataclass(frozen=True)
class Source:
    kind: str  # "simulate" | "replay" (built-in seed trace) | "trace" (uploaded)
    info: ScenarioInfo | None
    spec: ScenarioSpec | None  # with the view's fixes
    stored: StoredTrace | None

    @property
    def title(self) -> str:
        if self.stored is not None:
            return self.stored.name
        assert self.info is not None
        return self.info.title


def source_of(services: Services, state: ViewState) -> Source:
    if state.trace is not None:
        stored = services.store.get(state.trace)
        if stored is None:
            raise ViewError("trace", f"no stored trace has id {state.trace}", status=404)
        return Source("trace", None, None, stored)
    info = get_scenario(state.scenario_name)
    if info.kind == "replay":
        if state.params:
            field = state.params[0][0]
            raise ViewError(field, f"{field} does not apply to {info.name}: a replayed trace "
                            "has no scenario parameters")
        return Source("replay", info, None, None)
    assert info.spec is not None
    spec = ScenarioSpec.from_mapping(state.param_map, base=info.spec)
    return Source("simulate", info, spec, None)


def _canonical_params(source: Source) -> tuple[tuple[str, str], ...]:
    """Spec overrides as the model writes them, without those equal to the scenario's own."""
    if source.spec is None or source.info is None or source.info.spec is None:
        return ()
    mine, base = source.spec.to_mapping(), source.info.spec.to_mapping()
    return tuple((k, v) for k, v in mine.items() if k in SPEC_FIELDS and base.get(k) != v)


def _check_size(services: Services, spec: ScenarioSpec) -> None:
    """What the page can draw: one root's tree. What a build may cost over its whole run
    is mmu_model.cost.check_cost()'s, checked before any build starts."""
    limit = services.settings.max_shadow_pages
    pages = spec.estimated_shadow_pages
    if pages > limit:
        raise ViewError("l2_mem_gib", f"this spec builds about {pages:,} shadow pages per root; "
                        f"this server draws at most {limit:,}: lower l2_mem_gib or pdes_per_pd")


def run_entry(
    services: Services, source: Source, fixes: frozenset[str], *, lenient: bool = False,
    record: bool = True,
) -> RunEntry:
    """The cached run of `source` with `fixes` (built in a worker on first use)."""
    fixes = frozenset(fixes)
    job: BuildJob
    if source.kind == "trace":
        assert source.stored is not None
        job = TraceBuild(source.stored.id, source.stored.text, fixes, lenient, record)
    elif source.kind == "replay":
        assert source.info is not None
        assert source.info.trace_file is not None
        job = SeedTraceBuild(source.info.trace_file, fixes, record)
    else:
        assert source.spec is not None
        spec = source.spec.replace(fixes=fixes)
        _check_size(services, spec)
        job = ScenarioBuild(spec, record)
    return services.runs.get(job.key, job)


@dataclass(frozen=True)
class Resolved:
    state: ViewState  # canonical: step filled in, step_grain dropped
    source: Source
    entry: RunEntry
    snap: StepSummary  # the step without its pages: what a step's panels need

    @property
    def run(self) -> Run:
        return self.entry.run

    @property
    def action_step(self) -> int:
        """The view's step as an action step (at op grain: the action the op belongs to)."""
        return self.run.convert_step(self.snap.step, self.snap.grain, "action")

    @property
    def full(self) -> Snapshot:
        """The step with every page (built on first use: it costs the tree's size)."""
        return self.entry.snapshot(self.snap.step, self.snap.grain)


def resolve(services: Services, state: ViewState) -> Resolved:
    """Load (or reuse) the run a view shows and take its snapshot at the view's step."""
    source = source_of(services, state)
    entry = run_entry(services, source, state.fix_set, lenient=state.lenient)
    run = entry.run
    grain = state.grain
    if state.step is None:
        step = run.convert_step(run.default_step, "action", grain)
    elif state.step_grain is not None and state.step_grain != grain:
        step = run.convert_step(state.step, state.step_grain, grain)
    else:
        step = state.step
    snap = entry.summary(step, grain)  # StepOutOfRange -> 422 naming "step"
    canonical = state.with_(step=step, step_grain=None, params=_canonical_params(source))
    return Resolved(canonical, source, entry, snap)


@dataclass(frozen=True)
class Baseline:
    """The compare baseline: the same source with the `base` fixes, at the same moment."""

    entry: RunEntry
    snap: Snapshot
    first_difference: int | None  # first action step at which the runs differ
    # The main run's fixes the URL asked for, when they were the baseline's own (comparing
    # a set with itself shows nothing, so the main run got their counterpart instead).
    asked: frozenset[str] | None = None

    @property
    def run(self) -> Run:
        return self.entry.run


@dataclass(frozen=True)
class PageRuns:
    """Every run a page view shows, resolved before anything renders."""

    main: Resolved
    baseline: Baseline | None  # compare mode only
    drawn: tuple[ViewState, StepSummary] | None  # the view the browser has drawn, same run


def _baseline(services: Services, r: Resolved) -> Baseline:
    s = r.state
    entry = run_entry(services, r.source, s.base_set, lenient=s.lenient)
    action_step = r.action_step
    step = entry.run.convert_step(action_step, "action", s.grain)
    # A scan of both runs' counters, the same at every step: once per pair of runs.
    first = entry.derive(f"first-difference {r.entry.key!r}",
                         lambda: entry.run.first_difference(r.run))
    if first is not None:
        first = min(first, r.run.n_actions)
    return Baseline(entry, entry.snapshot(step, s.grain), first)


def drawn_view(r: Resolved, url: str | None) -> tuple[ViewState, StepSummary] | None:
    """The view the browser has drawn (its URL, from X-Mmu-Drawn), if it is of r's run."""
    if not url or not url.startswith("/?"):
        return None
    try:
        state, _ = parse_query(parse_qsl(url[2:], keep_blank_values=True))
        if state.step is None or state.run_state().url() != r.state.run_state().url():
            return None
        return state, r.entry.summary(state.step, state.grain)
    except (ViewError, MmuModelError, ValueError):
        return None


def resolve_page(services: Services, state: ViewState, drawn_url: str | None = None) -> PageRuns:
    """The main run, the compare baseline and the drawn view of a page."""
    asked = None
    if state.compare and state.fix_set == state.base_set:
        asked = state.fix_set
        state = state.with_(fixes=counterpart(asked))
    main = resolve(services, state)
    baseline = None
    if main.state.compare:
        baseline = replace(_baseline(services, main), asked=asked)
    return PageRuns(main, baseline, drawn_view(main, drawn_url))


def boot_variants(services: Services, r: Resolved) -> list[tuple[str, Run, bool]]:
    """The view's run without and with track-write-zap (label, run, dashed), for /boots."""
    fixes = r.state.fix_set
    with_fix, without_fix = fixes | {TRACK_WRITE_ZAP}, fixes - {TRACK_WRITE_ZAP}
    out = []
    for label, variant, dashed in (("without track-write-zap", without_fix, True),
                                   ("with track-write-zap", with_fix, False)):
        if variant == fixes:
            run = r.run
        else:
            run = run_entry(services, r.source, variant, lenient=r.state.lenient,
                            record=False).run
        out.append((label, run, dashed))
    return out
