"""The trees cached with a run count in its weight (RunEntry.weigh), as much as they hold.

The run cache is bounded in bytes (app/runs.py): what the tree panel keeps per run, a few
steps' tree states and the newest two views' sorting of every page (app/treepanel.py),
must count in the run's weight while kept and stop counting once dropped. The weight is
compared with what tracemalloc sees those trees hold: within a factor of two either way.
"""

from __future__ import annotations

import gc
import tracemalloc

import mmu_model
from app.run_codec import run_nbytes
from app.runs import RunEntry
from app.treepanel import run_layout, tree_state_at
from app.viewstate import ViewState

# large-10k's quiet stretch from action 100 on: about 10,250 live pages at every step, so
# each tree view's sorting is large next to everything else a step keeps.
FIRST = 100
STEPS = 12  # more than the 8 tree states and the 2 views a run keeps


def _measured(entry: RunEntry, state: ViewState, steps: range) -> tuple[int, int]:
    """(weight added, bytes held) by caching the trees of `steps`, each moved from the one
    before; summaries, the layout and the page counts are worked out (and kept) first."""
    run_layout(entry, state)
    summaries = [entry.summary(step, "action") for step in steps]
    gc.collect()
    tracemalloc.start()
    try:
        held0, weight0 = tracemalloc.get_traced_memory()[0], entry.weight
        drawn = None
        for summary in summaries:
            view = state.with_(step=summary.step)
            tree_state_at(entry, view, summary, drawn)
            drawn = (view, summary)
        gc.collect()
        return entry.weight - weight0, tracemalloc.get_traced_memory()[0] - held0
    finally:
        tracemalloc.stop()


def test_a_cached_tree_weighs_what_it_holds() -> None:
    run = mmu_model.run_named("large-10k")
    entry = RunEntry(key="large-10k", run=run, nbytes=run_nbytes(run))
    weighed, held = _measured(entry, ViewState(scenario="large-10k"), range(FIRST, FIRST + 1))
    assert held > 1 << 20  # one 10k-page tree's sorting: megabytes, not noise
    assert held / 2 <= weighed <= held * 2


def test_trees_dropped_from_the_cache_stop_weighing() -> None:
    """Twelve steps keep eight states and two views: the weight follows what is kept, not
    everything ever cached (which would be six times one view's sorting more)."""
    run = mmu_model.run_named("large-10k")
    state = ViewState(scenario="large-10k")
    one = RunEntry(key="one", run=run, nbytes=run_nbytes(run))
    weighed_one, _ = _measured(one, state, range(FIRST, FIRST + 1))
    many = RunEntry(key="many", run=run, nbytes=run_nbytes(run))
    weighed, held = _measured(many, state, range(FIRST, FIRST + STEPS))
    assert held / 2 <= weighed <= held * 2
    assert weighed < 3 * weighed_one  # two views kept (and small states), not twelve
