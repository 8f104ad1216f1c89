"""A step's tree delta built from the drawn step by the pages that changed equals the one
built from every page (app/treepanel.py).

Two apps serve the same views. One ("moved") is asked for each target step with
X-Mmu-Drawn naming the step it drew just before, so it builds the target's tree from the
drawn one's by Run.changed_pages(); the other ("full") is asked for every step from nothing,
so it sorts every page of the step. A from-nothing delta sets every record and adds every
edge, so it spells out the whole tree state; the moved delta must be exactly the difference
of the two full states (what tree_delta() of the two full states gives), and applied to the
drawn state it must give the target state. The moved app must also never load the target
step's pages (RunEntry.snapshot, Run.pages_at, Run.live_pages), or it has not moved at all.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.graph import CHANGED_KEEP_LIMIT
from app.main import create_app
from app.runs import RunEntry
from app.settings import Settings
from mmu_model import Run
from tests.api.conftest import HX
from tests.api.test_tree_lod import LOD_QUERY

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# (view, steps in the order the browser draws them): forward and back by one, forward and
# back by several, and a long jump each way; no step is asked twice (a cached state would
# not be built at all).
CHAINS = {
    # 60 boots of teaching-small: past LEAK_FOLD_THRESHOLD detached pages from about boot
    # 37 on, so the later steps fold leaks into per-boot groups; crosses boot boundaries.
    "leak-groups": ("/?v=1&scenario=teaching-small&boots=60",
                    [2500, 2501, 2503, 2502, 2498, 2530, 2440, 2447]),
    # The same at kernel-operation grain.
    "leak-groups-op": ("/?v=1&scenario=teaching-small&boots=60&grain=op",
                       [9000, 9001, 9004, 9003, 8990, 9100, 8800]),
    # large-10k: about 10,000 pages, past COLLAPSE_THRESHOLD, so healthy level-1 pages fold
    # into summary nodes. Its actions 36-79 each touch 514 pages (busy steps, which fold
    # touched pages too; about 1,000 events each); from action 80 on a step touches few.
    "collapsed-busy": ("/?v=1&scenario=large-10k", [43, 44, 46, 45, 40, 50, 48]),
    "collapsed": ("/?v=1&scenario=large-10k", [100, 101, 103, 102, 98, 130, 90]),
    # Moves between a quiet step and a busy one (34 -> 36, 78 -> 80 and back), where the
    # untouched zapped PTs fold (busy) or are drawn one by one (quiet).
    "quiet-to-busy": ("/?v=1&scenario=large-10k", [34, 36, 35, 37, 33]),
    "busy-to-quiet": ("/?v=1&scenario=large-10k", [78, 80, 79, 81, 77]),
    # One PDPT over 60 full PDs (tests/api/test_tree_lod.py): the PD row is past ROW_BUDGET,
    # so healthy PDs fold with their PTs into range nodes. Steps 58-62 build the last PDs
    # and sync (every range folds at 62); 63 on, each step writes one PD's range, which
    # leaves that PD and its range neighbours out of their fold.
    "range-folds": (f"/?v=1&{LOD_QUERY}", [62, 63, 65, 64, 58, 80, 70]),
    # Later, orphaned unsync PTs (individual, below LEAK_FOLD_THRESHOLD) stand beside folds.
    "range-folds-leaks": (f"/?v=1&{LOD_QUERY}", [1000, 1001, 1003, 1002, 990, 1020, 1010]),
    # The same with range 5 of the PD row opened (open=r5:2): its PDs drawn one by one.
    "range-folds-open": (f"/?v=1&{LOD_QUERY}&open=r5:2", [63, 64, 66, 62, 90, 75]),
    # A replayed seed trace, at kernel-operation grain.
    "replay": ("/?v=1&scenario=seed-top-down&grain=op", [5, 6, 9, 8, 2, 30, 14]),
}


def tree_delta_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="tree-delta">(.*?)</script>', html)
    assert match, "the view has no tree delta"
    value: dict[str, Any] = json.loads(match.group(1))
    return value


def state_of(delta: dict[str, Any]) -> dict[str, Any]:
    """A from-nothing delta as the whole tree state (records, edges, rings, ...)."""
    assert delta["base"] is None
    assert not delta["drop"]
    assert not delta["edges_cut"]
    return {"records": delta["set"], "edges": sorted(map(tuple, delta["edges_add"])),
            "rings": delta["rings"], "selected": delta["selected"], "note": delta["note"]}


def difference(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What tree_delta() says between two whole states (figures.tree_delta's rules)."""
    old_edges, new_edges = set(old["edges"]), set(new["edges"])
    return {
        "set": {k: r for k, r in new["records"].items() if old["records"].get(k) != r},
        "drop": sorted(k for k in old["records"] if k not in new["records"]),
        "edges_add": sorted(new_edges - old_edges), "edges_cut": sorted(old_edges - new_edges),
        "rings": new["rings"], "selected": new["selected"], "note": new["note"],
    }


def applied(old: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """`delta` applied to `old`, as static/app.js applies it."""
    records = {k: r for k, r in old["records"].items() if k not in delta["drop"]}
    records.update(delta["set"])
    cut = set(map(tuple, delta["edges_cut"]))
    edges = sorted((set(old["edges"]) - cut) | set(map(tuple, delta["edges_add"])))
    return {"records": records, "edges": edges, "rings": delta["rings"],
            "selected": delta["selected"], "note": delta["note"]}


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    with TestClient(create_app(Settings(db_path=tmp_path / "moved" / "t.sqlite3"))) as moved, \
            TestClient(create_app(Settings(db_path=tmp_path / "full" / "t.sqlite3"))) as full:
        yield moved, full


def url_at(view: str, step: int | None) -> str:
    return view if step is None else f"{view}&step={step}"


@pytest.mark.parametrize("chain", list(CHAINS))
def test_a_moved_tree_delta_is_the_full_paths_delta(
        apps: tuple[Any, Any], chain: str, monkeypatch: pytest.MonkeyPatch) -> None:
    moved, full = apps
    view, steps = CHAINS[chain]
    loads: list[str] = []
    snapshot, pages_at, live_pages = RunEntry.snapshot, Run.pages_at, Run.live_pages

    def spy_snapshot(self: RunEntry, *args: Any) -> Any:
        loads.append("snapshot")
        return snapshot(self, *args)

    def spy_pages(self: Run, *args: Any) -> Any:
        loads.append("pages_at")
        return pages_at(self, *args)

    def spy_live(self: Run, *args: Any) -> Any:
        loads.append("live_pages")
        return live_pages(self, *args)

    first = tree_delta_of(moved.get(url_at(view, steps[0]), headers=HX).text)
    drawn_url = first["url"]
    drawn = state_of(first)
    monkeypatch.setattr(RunEntry, "snapshot", spy_snapshot)
    monkeypatch.setattr(Run, "pages_at", spy_pages)
    monkeypatch.setattr(Run, "live_pages", spy_live)
    for step in steps[1:]:
        loads.clear()
        response = moved.get(url_at(view, step), headers=HX | {"X-Mmu-Drawn": drawn_url})
        assert response.status_code == 200
        assert loads == [], f"step {step}: the target's pages were loaded ({loads})"
        delta = tree_delta_of(response.text)
        assert delta["base"] == drawn_url
        target = state_of(tree_delta_of(full.get(url_at(view, step), headers=HX).text))
        got = {k: delta[k] for k in ("set", "drop", "edges_add", "edges_cut", "rings",
                                     "selected", "note")}
        got["edges_add"] = sorted(map(tuple, got["edges_add"]))
        got["edges_cut"] = sorted(map(tuple, got["edges_cut"]))
        assert got == difference(drawn, target), f"step {step} from {drawn_url}"
        assert applied(drawn, delta) == target
        drawn_url, drawn = delta["url"], target


def test_a_move_between_busy_steps_sorts_only_what_the_target_step_touched_again(
        apps: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """large-10k's actions 43 and 44 each touch more than 500 pages (a PD's 512 PTs and the
    pages above them): busy steps, so the touched PTs fold into their PD's summary nodes like
    untouched ones (app/graph.py, _summarized). Moving from 43 to 44, a PT only 43 touched
    is in the same state at 44 and untouched there: it stays in its summary, so the move
    asks Run.changed_states() for 44's touched pages, either step's ghosts and, of 43's,
    only those drawn one by one (graph.resort_also). Asking for 43's 512 PTs too costs
    a whole table's pages more per step (the test above checks the tree is the same)."""
    moved, _ = apps
    view = "/?v=1&scenario=large-10k"
    first = tree_delta_of(moved.get(url_at(view, 43), headers=HX).text)
    asked: list[set[int]] = []
    changed_states = Run.changed_states

    def spy(self: Run, *args: Any) -> Any:
        asked.append(set(args[3]) if len(args) > 3 else set())
        return changed_states(self, *args)

    monkeypatch.setattr(Run, "changed_states", spy)
    response = moved.get(url_at(view, 44), headers=HX | {"X-Mmu-Drawn": first["url"]})
    assert response.status_code == 200
    assert tree_delta_of(response.text)["base"] == first["url"]
    (entry,) = moved.app.state.services.runs._entries.values()
    before, after = entry.summary(43, "action"), entry.summary(44, "action")
    assert len(before.changed) > CHANGED_KEEP_LIMIT
    assert len(after.changed) > CHANGED_KEEP_LIMIT
    ghosts = {sp.id for sp in (*before.ghosts, *after.ghosts)}
    # Pages drawn one by one at 43: its records keyed by a page id ("12", not "s12:...").
    alone = {int(key) for key in first["set"] if key.isdigit()}
    (also,) = asked
    assert after.changed <= also
    assert also - after.changed - ghosts <= alone & before.changed
    assert len(also) < len(after.changed) + 10


@pytest.mark.parametrize("drawn_step", [101, 90])
def test_a_drawn_view_whose_sorting_is_gone_is_moved_from_a_cached_one(
        apps: tuple[Any, Any], drawn_step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser that sends steps faster than it draws them (a held arrow key) names a
    drawn view whose tree the server no longer holds sorted (app/treepanel.py keeps the
    sorting of the newest _VIEWS_PER_RUN trees only: 101 here, after 102-104), or never
    built (90). Both trees, the drawn one and the target, are then moved from the
    nearest sorted one (104) instead of sorted from every page of their steps, and the
    delta is still the difference of the two whole states."""
    moved, full = apps
    view = "/?v=1&scenario=large-10k"
    drawn_url = tree_delta_of(moved.get(url_at(view, 100), headers=HX).text)["url"]
    for step in (101, 102, 103, 104):
        delta = tree_delta_of(moved.get(url_at(view, step),
                                        headers=HX | {"X-Mmu-Drawn": drawn_url}).text)
        drawn_url = delta["url"]
    loads: list[int] = []
    live_pages = Run.live_pages

    def spy(self: Run, *args: Any) -> Any:
        loads.append(1)
        return live_pages(self, *args)

    monkeypatch.setattr(Run, "live_pages", spy)
    drawn_url = drawn_url.replace("step=104", f"step={drawn_step}")
    response = moved.get(url_at(view, 105), headers=HX | {"X-Mmu-Drawn": drawn_url})
    assert loads == [], "every page of a step was sorted"
    delta = tree_delta_of(response.text)
    assert delta["base"] == drawn_url
    monkeypatch.setattr(Run, "live_pages", live_pages)
    drawn = state_of(tree_delta_of(full.get(url_at(view, drawn_step), headers=HX).text))
    target = state_of(tree_delta_of(full.get(url_at(view, 105), headers=HX).text))
    got = {k: delta[k] for k in ("set", "drop", "edges_add", "edges_cut", "rings",
                                 "selected", "note")}
    got["edges_add"] = sorted(map(tuple, got["edges_add"]))
    got["edges_cut"] = sorted(map(tuple, got["edges_cut"]))
    assert got == difference(drawn, target)
