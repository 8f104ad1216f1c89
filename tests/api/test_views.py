"""The URL is the view: a shared URL reproduces the snapshot, and controls keep what they can."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import mmu_model
from app.viewstate import parse_query
from mmu_model import DEFAULT_FIXES
from tests.api.conftest import HX

TWZ = "track-write-zap"


def query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def page_ids(snapshot: dict[str, Any]) -> dict[int, str]:
    return {p["id"]: p["status"] for p in snapshot["pages"]}


def test_default_view_opens_teaching_small_at_its_default_step(shared_client: Any) -> None:
    """GET / shows teaching-small at run.default_step with a tree of all its pages."""
    run = mmu_model.run_named("teaching-small")
    snap = run.snapshot(run.default_step)
    response = shared_client.get("/")
    ctx = response.context
    assert ctx["source"]["scenario"] == "teaching-small"
    assert ctx["timeline"]["step"] == run.default_step
    assert ctx["timeline"]["last_step"] == run.n_actions
    # A page draws the tree from nothing: every page (below the fold threshold) is a record.
    assert ctx["tree"]["base"] is None
    ids = {int(key) for key in ctx["tree"]["set"]}
    assert ids == {p.id for p in (*snap.pages, *snap.ghosts)}


def test_shared_url_reproduces_the_same_snapshot(shared_client: Any) -> None:
    """The URL pushed after some clicks, opened fresh, gives the identical snapshot JSON."""
    first = shared_client.get("/?step=7&fixes=flood-detection&sp=3&grain=op&step_grain=action",
                              headers=HX)
    pushed = first.headers["HX-Push-Url"]
    assert "step_grain" not in pushed
    again = shared_client.get(pushed)
    assert again.context["timeline"] == first.context["timeline"]
    a = shared_client.get("/api/snapshot?" + urlsplit(pushed).query).json()
    run = mmu_model.run_named("teaching-small", fixes=frozenset({"flood-detection"}))
    op_step = run.convert_step(7, "action", "op")
    assert a["step"] == op_step
    assert a["grain"] == "op"
    assert page_ids(a) == {p.id: p.status for p in run.snapshot(op_step, "op").pages}
    assert a["view"]["url"] == pushed
    b = shared_client.get("/api/snapshot?" + urlsplit(a["view"]["url"]).query).json()
    assert a == b


def test_step_buttons_move_one_step_and_stop_at_the_ends(shared_client: Any) -> None:
    """Next/prev URLs are one step away; first is 0 and last is the run's last step."""
    run = mmu_model.run_named("teaching-small")
    urls = shared_client.get("/?step=3").context["urls"]
    assert query(urls["next"])["step"] == "4"
    assert query(urls["prev"])["step"] == "2"
    assert query(urls["first"])["step"] == "0"
    assert query(urls["last"])["step"] == str(run.n_actions)
    end = shared_client.get(f"/?step={run.n_actions}")
    assert query(end.context["urls"]["next"])["step"] == str(run.n_actions)
    assert 'id="btn-next"' in end.text
    assert "step" not in query(urls["slider"])


def test_grain_switch_keeps_the_same_moment(shared_client: Any) -> None:
    """Switching action -> op lands on the op step that ends the current action."""
    run = mmu_model.run_named("teaching-small")
    ctx = shared_client.get("/?step=7").context
    op = shared_client.get(ctx["urls"]["other_grain"]).context["timeline"]
    assert op["grain"] == "op"
    assert op["step"] == run.convert_step(7, "action", "op")
    assert "grain" not in query(ctx["urls"]["grain_select"])
    back = shared_client.get(ctx["urls"]["grain_select"] + "&grain=action").context
    assert back["timeline"]["step"] == 7


def test_fix_toggle_reruns_and_keeps_the_action_step(shared_client: Any) -> None:
    """Each fix checkbox URL flips only that fix and stays on the same action step."""
    ctx = shared_client.get("/?step=7&grain=op&step_grain=action").context
    for row in ctx["fixes"]:
        state, _ = parse_query(query(row["url"]).items())
        assert state.fix_set == DEFAULT_FIXES ^ {row["name"]}
        target = shared_client.get(row["url"]).context
        run = mmu_model.run_named("teaching-small", fixes=state.fix_set)
        assert target["timeline"]["step"] == run.convert_step(7, "action", "op")
        assert {r["name"]: r["on"] for r in target["fixes"]}[row["name"]] is not row["on"]


def test_fix_toggle_at_op_grain_says_where_it_lands(shared_client: Any) -> None:
    """At op grain the fixes panel says a toggle lands on the action's last op; not at action."""
    run = mmu_model.run_named("teaching-small")
    op_step = run.convert_step(7, "action", "op") - 1  # inside action 7, not its last op
    response = shared_client.get(f"/?grain=op&step={op_step}")
    note = response.context["toggle_note"]
    assert note is not None
    assert "last operation of guest action 7" in note
    assert 'id="toggle-note"' in response.text
    assert f'title="{note}"' in response.text
    assert shared_client.get("/?step=7").context["toggle_note"] is None


def test_share_box_shows_the_absolute_url_of_the_view(shared_client: Any) -> None:
    """"Link to this view" holds (and Copy link copies) the view URL on this server."""
    response = shared_client.get("/?step=7&sp=3")
    ctx = response.context
    share = ctx["urls"]["share"]
    assert share == "http://testserver" + ctx["urls"]["self"]
    assert f'id="share-url" type="text" readonly value="{share.replace("&", "&amp;")}"' in (
        response.text)
    assert query(share) == query(ctx["urls"]["self"])


def test_track_write_zap_removes_the_leak_at_the_first_orphan_step(shared_client: Any) -> None:
    """With track-write-zap the page shows no orphaned unsync page where mainline has one."""
    run = mmu_model.run_named("teaching-small")
    step = next(s for s in range(run.n_actions + 1) if run.snapshot(s).orphans.unsync)
    leak = shared_client.get(f"/?step={step}")
    assert leak.context["orphans"]["unsync"] == run.snapshot(step).orphans.unsync > 0
    assert f'data-orphans-unsync="{leak.context["orphans"]["unsync"]}"' in leak.text
    fixed = shared_client.get(f"/?step={step}&fixes={TWZ},unlink-children-zap,flood-detection")
    assert fixed.context["orphans"]["unsync"] == 0


def test_compare_shows_both_runs_and_the_first_difference(shared_client: Any) -> None:
    """compare=1 draws the base run too; first-difference is the model's first_difference."""
    fixes = DEFAULT_FIXES | {TWZ}
    run = mmu_model.run_named("teaching-small", fixes=fixes)
    base = mmu_model.run_named("teaching-small")
    expected = base.first_difference(run)
    assert expected is not None
    ctx = shared_client.get(
        "/?compare=1&fixes=track-write-zap,unlink-children-zap,flood-detection"
    ).context
    compare = ctx["compare"]
    assert compare["first_diff"] == expected
    assert query(compare["first_diff_url"])["step"] == str(expected)
    at_diff = shared_client.get(compare["first_diff_url"])
    assert 'id="tree-base"' in at_diff.text
    assert 'id="btn-first-diff"' in at_diff.text


def test_compare_toggle_from_defaults_adds_the_patch(shared_client: Any) -> None:
    """Turning compare on from the default fixes compares mainline with mainline + patch 1/2."""
    url = shared_client.get("/?step=4").context["urls"]["compare"]
    q = query(url)
    assert q["compare"] == "1"
    assert set(q["fixes"].split(",")) == DEFAULT_FIXES | {TWZ}
    assert q["step"] == "4"


def test_selected_page_details_list_its_parents_and_children(shared_client: Any) -> None:
    """sp=<id> shows the page's details with links to its parents and children."""
    run = mmu_model.run_named("teaching-small")
    snap = run.snapshot(run.default_step)
    pd = next(p for p in snap.pages if p.level == 2)
    children = sorted(p.id for p in snap.pages if any(pid == pd.id for pid, _ in p.parents))
    ctx = shared_client.get(f"/?sp={pd.id}").context
    selected = ctx["selected"]
    assert selected["present"] is True
    assert sorted(c["id"] for c in selected["children"]) == children
    assert [p["id"] for p in selected["parents"]] == [pid for pid, _ in pd.parents]
    assert selected["path"][0]["id"] == pd.id
    missing = shared_client.get("/?sp=99999").context["selected"]
    assert missing["present"] is False


def test_embed_view_has_tree_and_controls_only(shared_client: Any) -> None:
    """embed=1 keeps the tree and timeline and drops forms, stats and narration."""
    page = shared_client.get("/?embed=1").text
    for present in ('id="tree"', 'id="step-slider"', 'id="btn-next"', 'id="btn-play"'):
        assert present in page
    for absent in ("<form", 'id="stats"', 'id="narration"', 'id="copy-link"'):
        assert absent not in page


def test_action_grain_lists_the_kernel_operations_of_the_action(shared_client: Any) -> None:
    """At action grain the narration lists the action's kernel operations, linked at op grain."""
    run = mmu_model.run_named("teaching-small")
    action = run.action(6)
    ctx = shared_client.get("/?step=7").context
    ops = ctx["narration"]["ops"]
    assert [o["kind"] for o in ops] == [e.kind for e in action.ops][: len(ops)]
    assert query(ops[0]["url"])["grain"] == "op"
    assert query(ops[0]["url"])["step"] == str(action.ops[0].index + 1)
    assert ctx["narration"]["action"]["n_ops"] == action.n_ops
    assert ctx["narration"]["more_ops"] == action.n_ops - len(ops)


def test_action_with_thousands_of_ops_counts_them_all(shared_client: Any) -> None:
    """large-10k's INVEPT step has more ops than the model lists: the page counts them all."""
    run = mmu_model.run_named("large-10k")
    action = run.action(run.default_step - 1)
    assert action.more_ops > 0
    response = shared_client.get("/?scenario=large-10k")
    narration = response.context["narration"]
    assert narration["action"]["n_ops"] == action.n_ops
    assert narration["more_ops"] == action.n_ops - len(narration["ops"])
    assert f"{action.n_ops:,} kernel operations" in response.text
    assert f"and {narration['more_ops']:,} more" in response.text


@pytest.mark.parametrize("name", [s.name for s in mmu_model.list_scenarios()
                                  if s.kind == "replay"])
def test_replay_scenarios_open(shared_client: Any, name: str) -> None:
    """The built-in seed-trace scenarios open with their replay report."""
    response = shared_client.get(f"/?scenario={name}")
    assert response.status_code == 200
    assert response.context["replay"] is not None


def test_stats_panel_shows_the_unreachable_pages_beside_the_orphans(shared_client: Any) -> None:
    """At teaching-small's last step (after the second teardown, 4 unsync orphans leaked),
    the stats panel lists `unreachable` and `unreachable (unsync)` as the snapshot counts
    them. Every orphan (valid, no parent SPTE, not a root) is reachable from no root, so
    each unreachable count is at least its orphan count; the rows carry no step delta,
    since the counts are derived from the step's pages rather than recorded per event."""
    run = mmu_model.run_named("teaching-small")
    last = run.n_actions
    orphans = run.snapshot(last).orphans
    response = shared_client.get(f"/?v=1&scenario=teaching-small&step={last}")
    rows = {row["name"]: row for row in response.context["stats"]}
    assert rows["orphans (unsync)"]["value"] == orphans.unsync == 4
    assert rows["unreachable"]["value"] == orphans.unreachable
    assert rows["unreachable (unsync)"]["value"] == orphans.unreachable_unsync
    assert rows["unreachable"]["value"] >= rows["orphans"]["value"]
    # After the second teardown the vCPU holds no root: every page left is an orphan or an
    # ex-root (root_count 0), so none is reachable and the counts are the page counts.
    pages = run.snapshot(last).pages
    assert {p.status for p in pages} <= {"orphan", "orphan-unsync", "ex-root"}
    assert all(p.root_count == 0 for p in pages)
    assert rows["unreachable"]["value"] == len(pages)
    assert rows["unreachable (unsync)"]["value"] == sum(p.status == "orphan-unsync"
                                                        for p in pages) == 4
    assert rows["unreachable"]["delta"] is None
    assert '<tr data-stat="unreachable (unsync)"' in response.text


def test_export_menu_links_the_steps_dag_as_graphml_and_dot(shared_client: Any) -> None:
    """The export menu's GraphML and DOT links carry the view (scenario and step), and each
    answers with that step's shadow-page DAG: one GraphML node / one DOT node statement per
    live shadow page of the snapshot."""
    run = mmu_model.run_named("teaching-small")
    step = run.default_step
    n_pages = len(run.snapshot(step).pages)
    response = shared_client.get(f"/?v=1&scenario=teaching-small&step={step}")
    for name in ("graphml", "dot"):
        url = response.context["urls"][name]
        assert query(url)["step"] == str(step)
        assert f'href="{url.replace("&", "&amp;")}"' in response.text
        body = shared_client.get(url)
        assert body.status_code == 200, body.text
        if name == "graphml":
            nodes = body.text.count("<node ")
        else:  # node statements carry a label; edge statements (" -> ") may too
            nodes = sum("[label=" in line and " -> " not in line
                        for line in body.text.splitlines())
        assert nodes == n_pages
