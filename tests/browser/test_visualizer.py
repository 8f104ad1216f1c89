"""The visualizer page in real headless Chromium, against the real server.

Every expectation about what the page shows (steps, stats, which shadow page is an
orphan, where the first difference is) is derived from the model (mmu_model), never
copied from the page. The tree is read from the plotly div's figure data, never from
pixels. Screenshots of the main states go to the artifacts dir; the 10k timings are
appended to artifacts/timings.txt. README's docs/screenshot.png comes from
test_screenshots.py (UPDATE_DOCS_SCREENSHOT=1).
"""

from __future__ import annotations

import functools
import re
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

import mmu_model
from mmu_model import DEFAULT_FIXES, Run, Snapshot

ROOT = Path(__file__).resolve().parents[2]
TOP_DOWN_TRACE = ROOT / "tests" / "fixtures" / "seed-top-down.trace"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
VIEWPORT = {"width": 1400, "height": 900}
TRACK_WRITE_ZAP = "track-write-zap"
FIX_NAMES = tuple(mmu_model.FIXES)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LARGE_SANITY_BOUND_S = 60.0

# ------------------------------------------------------------------------- page helpers

# Reads one figure's data (an array of plotly traces) into plain facts: every shadow page
# point as {id, status} and every folded summary node as {count, status}. The status comes
# from the point's customdata (or its text / hover text), never from colours or pixels.
_FIGURE_FACTS_JS = """
function figureFacts(data) {
  const STATUSES = ["orphan-unsync", "ex-root", "orphan", "unsync", "synced", "root", "zapped"];
  const statusOf = (values) => {
    for (const v of values) {
      if (typeof v === "string" && STATUSES.includes(v)) return v;
    }
    for (const v of values) {
      if (typeof v !== "string") continue;
      for (const s of STATUSES) {
        if (new RegExp("(^|[^a-z-])" + s + "($|[^a-z-])").test(v)) return s;
      }
    }
    return null;
  };
  const at = (arr, i) => (Array.isArray(arr) ? arr[i] : arr);
  const pages = [], summaries = [];
  for (const t of data || []) {
    const n = t.x ? t.x.length : 0;
    const isSummary = t.meta === "summary" || /folded/i.test(t.name || "");
    for (let i = 0; i < n; i++) {
      const cd = Array.isArray(t.customdata) ? t.customdata[i] : undefined;
      const cdList = Array.isArray(cd) ? cd : (cd === undefined ? [] : [cd]);
      if (isSummary) {
        summaries.push({count: Number(cdList[1]), status: String(cdList[2])});
        continue;
      }
      const status = statusOf([...cdList, at(t.text, i), at(t.hovertext, i)]);
      if (status === null) continue;  // edges and overlay rings carry no page
      const id = Number.isInteger(cdList[0]) ? cdList[0] : null;
      pages.push({id, status});
    }
  }
  return {pages, summaries};
}
"""

# Whether a tree shows the view its panel is of: the main tree is updated by deltas and says
# which view it last drew (data-drawn-url); a whole figure sent as JSON (the compare
# baseline) must equal what is drawn.
_DRAWN_JS = """
function drawnIsCurrent(id, el, panel) {
  if (el.dataset.drawnUrl !== undefined || document.getElementById("tree-delta") && id === "tree") {
    return !!panel && el.dataset.drawnUrl === panel.dataset.url;
  }
  const script = document.querySelector('script[data-figure-for="' + id + '"]');
  if (!script) return true;
  const sig = (data) => JSON.stringify(
    data.map((t) => [t.meta ?? t.name ?? null, t.x, t.y, t.customdata ?? null]));
  try { return sig(JSON.parse(script.textContent).data) === sig(el.data); }
  catch (e) { return false; }
}
"""

# The drawn tree: its data facts, a signature of the whole figure data (to tell "changed"),
# and whether it is in step with the figure JSON the server sent alongside it (if any).
_TREE_JS = (
    "(id) => {"
    + _FIGURE_FACTS_JS
    + _DRAWN_JS
    + """
  const el = document.getElementById(id);
  if (!el || !Array.isArray(el.data) || el.data.length === 0 || !el._fullLayout) return null;
  if (!el.querySelector(".main-svg")) return null;
  const sig = (data) => JSON.stringify(
    data.map((t) => [t.meta ?? t.name ?? null, t.x, t.y, t.customdata ?? null]));
  const panel = el.closest("[data-step]");
  const synced = drawnIsCurrent(id, el, panel);
  return {
    facts: figureFacts(el.data),
    signature: sig(el.data),
    synced,
    step: panel ? panel.dataset.step : null,
    lastStep: panel ? panel.dataset.lastStep : null,
    orphansUnsync: panel ? panel.dataset.orphansUnsync : null,
    fresh: panel ? panel.dataset.qaStale !== "1" : true,
  };
}
"""
)

_READY_JS = "([id, step]) => {" + _DRAWN_JS + """
  const el = document.getElementById(id);
  if (!el || !Array.isArray(el.data) || el.data.length === 0 || !el._fullLayout) return false;
  if (!el.querySelector(".main-svg")) return false;
  const panel = el.closest("[data-step]");
  if (panel && panel.dataset.qaStale === "1") return false;
  if (step !== null && (!panel || panel.dataset.step !== String(step))) return false;
  return drawnIsCurrent(id, el, panel);
}"""

# Marks the current tree panel; a swapped-in (or reloaded) panel does not carry the mark,
# so waiting for an unmarked panel waits for the view the action asked for.
_MARK_STALE_JS = """() => {
  for (const el of document.querySelectorAll("[data-step]")) el.dataset.qaStale = "1";
}"""


def tree(page: Any, tree_id: str = "tree") -> dict[str, Any]:
    """The facts of the drawn tree `tree_id` (fails if it is not drawn)."""
    state = page.evaluate(_TREE_JS, tree_id)
    assert state is not None, f"#{tree_id} is not a drawn plotly figure"
    return state


def wait_tree(
    page: Any, step: int | None = None, *, tree_id: str = "tree", timeout_ms: float = 30_000
) -> dict[str, Any]:
    """Wait until #tree_id is drawn, fresh, at `step` (if given) and in step with its JSON.

    On a timeout, fails with what the page shows instead: its error panel, if any, the
    panel's step, and the last requests it made.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(_READY_JS, arg=[tree_id, step], timeout=timeout_ms)
    except PlaywrightTimeout:
        shown = page.evaluate(
            """(id) => {
              const err = document.getElementById("error");
              const el = document.getElementById(id);
              const panel = el && el.closest("[data-step]");
              return {error: err ? err.innerText.replace(/\\s+/g, " ").trim() : null,
                      step: panel ? panel.dataset.step : null,
                      stale: panel ? panel.dataset.qaStale === "1" : null};
            }""",
            tree_id,
        )
        pytest.fail(
            f"#{tree_id} did not show step {step} within {timeout_ms / 1000:.0f} s; the page "
            f"shows {shown} at {page.url}; last requests: {page.requests[-4:]}",
            pytrace=False,
        )
    return tree(page, tree_id)


def act(
    page: Any, action: Callable[[], Any], step: int | None = None, *,
    timeout_ms: float = 30_000,
) -> dict[str, Any]:
    """Do `action` (a click, a key, a navigation) and wait for the new view's tree."""
    page.evaluate(_MARK_STALE_JS)
    action()
    return wait_tree(page, step, timeout_ms=timeout_ms)


def blur(page: Any) -> None:
    """Take the focus off any control, so keys go to the page's own shortcuts."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def query(url: str) -> dict[str, str]:
    """The query string of `url` as a dict (one value per name, as the page writes them)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def url_fixes(url: str, name: str = "fixes") -> frozenset[str]:
    """The fix set a view URL names (absent: the model's defaults)."""
    raw = query(url).get(name)
    if raw is None:
        return DEFAULT_FIXES
    names = [n for n in raw.split(",") if n]
    return frozenset() if names == ["none"] else frozenset(names)


def text_of(page: Any, selector: str) -> str:
    return " ".join(page.locator(selector).inner_text().split())


def stats_of(page: Any) -> dict[str, int]:
    """The #stats panel as {name: value}: one row per stat, the name then the value."""
    rows = page.evaluate(
        """() => [...document.querySelectorAll("#stats tr")].map((tr) =>
              [...tr.querySelectorAll("th, td")].map((c) => c.textContent.trim()))"""
    )
    out: dict[str, int] = {}
    for cells in rows:
        if len(cells) >= 2 and re.fullmatch(r"-?[\d,]+", cells[1]):
            out[cells[0]] = int(cells[1].replace(",", ""))
    assert out, "#stats shows no stat rows"
    return out


def expected_stats(snap: Snapshot, shown: dict[str, int]) -> dict[str, int]:
    """What the model says for each stat the panel shows (KVM stats, the orphan and the
    unreachable counts)."""
    model = dict(snap.stats) | {"orphans": snap.orphans.total,
                                "orphans (unsync)": snap.orphans.unsync,
                                "unreachable": snap.orphans.unreachable,
                                "unreachable (unsync)": snap.orphans.unreachable_unsync}
    return {name: model[name] for name in shown if name in model}


def page_statuses(snap: Snapshot) -> dict[int, str]:
    """id -> status of every page the tree should draw at `snap` (live pages and ghosts)."""
    return {sp.id: sp.status for sp in (*snap.pages, *snap.ghosts)}


def drawn_statuses(state: dict[str, Any]) -> dict[int, str]:
    return {p["id"]: p["status"] for p in state["facts"]["pages"]}


def drawn_with_status(state: dict[str, Any], status: str) -> set[int]:
    return {p["id"] for p in state["facts"]["pages"] if p["status"] == status}


def narration_text(snap: Snapshot) -> str:
    assert snap.action is not None
    return " ".join(snap.action.narration.split())


def assert_no_console_errors(page: Any) -> None:
    assert page.console_errors == [], f"console errors: {page.console_errors}"


@functools.cache
def named_run(name: str, fixes: frozenset[str] | None = None) -> Run:
    return mmu_model.run_named(name, fixes=fixes)


def changes_something(run: Run, step: int) -> bool:
    """Whether action step `step` changes a page or a counter (the hash-walk tally is a cost,
    not state): the page's arrows skip the steps that do not, unless skip=0."""
    snap = run.snapshot(step)
    return bool(snap.changed) or any(k != "hash_walked" for k in snap.stat_deltas)


def next_changing_step(run: Run, step: int) -> int:
    last = run.last_step("action")
    return next((s for s in range(step + 1, last + 1) if changes_something(run, s)), last)


def first_orphan_step(run: Run) -> int:
    """The first action step at which the model has an orphaned unsync page."""
    return next(s for s in range(run.last_step() + 1) if run.snapshot(s).orphans.unsync)


def node_position(page: Any, sp_id: int, tree_id: str = "tree") -> tuple[float, float]:
    """Viewport coordinates of shadow page `sp_id`'s marker, from the figure's own axes."""
    page.locator(f"#{tree_id}").scroll_into_view_if_needed()
    pos = page.evaluate(
        """([id, spId]) => {
          const gd = document.getElementById(id), fl = gd._fullLayout;
          for (const t of gd.data) {
            if (!Array.isArray(t.customdata)) continue;
            for (let i = 0; i < t.customdata.length; i++) {
              const cd = t.customdata[i];
              if (Array.isArray(cd) && cd[0] === spId && t.meta !== "summary") {
                const r = gd.getBoundingClientRect();
                return [r.left + fl._size.l + fl.xaxis.l2p(t.x[i]),
                        r.top + fl._size.t + fl.yaxis.l2p(t.y[i])];
              }
            }
          }
          return null;
        }""",
        [tree_id, sp_id],
    )
    assert pos is not None, f"shadow page #{sp_id} is not drawn in #{tree_id}"
    return pos[0], pos[1]


# ------------------------------------------------------------------------- tests


def test_default_page_draws_the_tree_offline_without_errors(page: Any, artifacts_dir: Path) -> None:
    """The default page draws teaching-small's tree, with no console error or foreign request."""
    run = named_run("teaching-small")
    page.goto("/")
    state = wait_tree(page)

    assert state["step"] == str(run.default_step)
    assert state["lastStep"] == str(run.last_step("action"))
    snap = run.snapshot(run.default_step)
    assert drawn_statuses(state) == page_statuses(snap)
    assert state["orphansUnsync"] == str(snap.orphans.unsync)
    page.screenshot(path=str(artifacts_dir / "default-page.png"))

    assert_no_console_errors(page)
    assert page.foreign_requests() == []


def test_buttons_slider_and_keys_step_narration_stats_tree_and_url(page: Any) -> None:
    """Buttons, the slider and the keyboard each move the step, and everything follows."""
    run = named_run("teaching-small")
    last = run.last_step("action")
    page.goto("/")
    wait_tree(page, run.default_step)
    shown = {"step": run.default_step, "state": tree(page)}

    def check(step: int, *, in_url: bool = True) -> None:
        state = tree(page)
        snap = run.snapshot(step)
        assert state["step"] == str(step)
        if in_url:
            assert query(page.url).get("step") == str(step), page.url
        stats = stats_of(page)
        assert stats == expected_stats(snap, stats)
        assert drawn_statuses(state) == page_statuses(snap)
        if step:
            assert narration_text(snap) in text_of(page, "#narration")
        before = run.snapshot(shown["step"])
        if (page_statuses(before), before.changed) != (page_statuses(snap), snap.changed):
            assert state["signature"] != shown["state"]["signature"], "the tree did not change"
        shown.update(step=step, state=state)

    def go(action: Callable[[], Any], step: int, *, keyboard: bool = False) -> None:
        if keyboard:
            blur(page)
        act(page, action, step)
        check(step)

    start = run.default_step
    check(start, in_url=False)  # the bare "/" opens the default step
    narration_before, stats_before = text_of(page, "#narration"), stats_of(page)
    go(lambda: page.click("#btn-next"), start + 1)
    assert text_of(page, "#narration") != narration_before
    assert stats_of(page) != stats_before
    go(lambda: page.click("#btn-prev"), start)
    go(lambda: page.click("#btn-last"), last)
    go(lambda: page.click("#btn-first"), 0)

    go(lambda: page.locator("#step-slider").fill("9"), 9)
    assert page.locator("#step-slider").input_value() == "9"

    # Steps 10-22 change nothing (step 9's flood zap freed the PD's shadow page, so L1's
    # next PDE zaps there are no longer trapped), and "skip
    # the steps that change nothing" is on by default: Right goes to the next one that does.
    go(lambda: page.keyboard.press("ArrowRight"), next_changing_step(run, 9), keyboard=True)
    go(lambda: page.keyboard.press("ArrowLeft"), 9, keyboard=True)
    go(lambda: page.keyboard.press("End"), last, keyboard=True)
    go(lambda: page.keyboard.press("Home"), 0, keyboard=True)

    # Space plays from step 0 and pauses; once paused the step (and the URL) stays put.
    blur(page)
    page.keyboard.press("Space")
    page.wait_for_function(
        "() => Number(document.getElementById('tree').closest('[data-step]').dataset.step) >= 2",
        timeout=15_000,
    )
    blur(page)
    page.keyboard.press("Space")
    page.wait_for_timeout(1_500)
    paused = tree(page)["step"]
    page.wait_for_timeout(1_500)
    state = wait_tree(page)
    assert state["step"] == paused, "still playing after the second Space"
    check(int(paused))
    assert_no_console_errors(page)


def test_first_orphan_step_shows_orphan_unsync_page_and_track_write_zap_prevents_it(
    page: Any, artifacts_dir: Path
) -> None:
    """At the first orphan step the figure marks the orphaned unsync page; track-write-zap: none."""
    run = named_run("teaching-small")
    step = first_orphan_step(run)
    snap = run.snapshot(step)
    orphans = {sp.id for sp in snap.pages if sp.status == "orphan-unsync"}
    assert orphans, "the model has no orphaned unsync page at its first orphan step"

    page.goto(f"/?v=1&scenario=teaching-small&step={step}")
    state = wait_tree(page, step)
    assert drawn_with_status(state, "orphan-unsync") == orphans
    assert state["orphansUnsync"] == str(len(orphans))
    assert stats_of(page)["orphans (unsync)"] == len(orphans)
    page.screenshot(path=str(artifacts_dir / "orphan-step.png"))

    checkbox = page.locator(f"#fix-{TRACK_WRITE_ZAP}")
    assert not checkbox.is_checked()
    state = act(page, checkbox.check, step)
    fixes = url_fixes(page.url)
    assert fixes == DEFAULT_FIXES | {TRACK_WRITE_ZAP}, page.url
    fixed = named_run("teaching-small", fixes).snapshot(step)
    assert fixed.orphans.unsync == 0
    assert drawn_with_status(state, "orphan-unsync") == set()
    assert drawn_statuses(state) == page_statuses(fixed)
    assert state["orphansUnsync"] == "0"
    assert page.locator(f"#fix-{TRACK_WRITE_ZAP}").is_checked()
    assert_no_console_errors(page)


def test_copied_link_reopens_identical_view_and_history_restores_steps(
    page: Any, browser: Any, server_url: str
) -> None:
    """A copied link shows the same view elsewhere; back and forward restore earlier steps."""
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server_url)
    page.goto("/")
    wait_tree(page)
    history = [page.url]
    act(page, page.locator(f"#fix-{TRACK_WRITE_ZAP}").check)
    history.append(page.url)
    act(page, page.locator("#compare").check)
    history.append(page.url)
    assert query(page.url).get("compare") == "1", page.url
    start = int(tree(page)["step"])
    act(page, lambda: page.click("#btn-next"), start + 1)
    history.append(page.url)
    act(page, lambda: page.click("#btn-next"), start + 2)
    history.append(page.url)

    # Select a shadow page by clicking its marker in the tree.
    sp_id = min(drawn_with_status(tree(page), "unsync") or drawn_statuses(tree(page)))
    x, y = node_position(page, sp_id)
    act(page, lambda: page.mouse.click(x, y), start + 2)
    assert query(page.url).get("sp") == str(sp_id), page.url
    assert f"#{sp_id}" in text_of(page, "#sp-details")
    history.append(page.url)

    page.click("#copy-link")
    page.wait_for_function("() => navigator.clipboard.readText().then((t) => t.length > 0)")
    link = page.evaluate("() => navigator.clipboard.readText()").strip()
    assert urlsplit(link).scheme in ("http", "https"), f"copied link is not absolute: {link!r}"
    assert urljoin(server_url, link).startswith(server_url)
    assert query(link) == query(page.url)

    def view(pg: Any) -> dict[str, Any]:
        main, base = tree(pg), tree(pg, "tree-base")
        return {
            "step": main["step"], "orphans_unsync": main["orphansUnsync"],
            "tree": main["signature"], "base_tree": base["signature"],
            "fixes": {n: pg.locator(f"#fix-{n}").is_checked() for n in FIX_NAMES},
            "compare": pg.locator("#compare").is_checked(),
            "selected": text_of(pg, "#sp-details"),
            "narration": text_of(pg, "#narration"), "stats": stats_of(pg),
        }

    here = view(page)
    context = browser.new_context(viewport=VIEWPORT)
    try:
        other = context.new_page()
        other.goto(link)
        wait_tree(other, start + 2)
        wait_tree(other, tree_id="tree-base")
        assert view(other) == here
        assert query(other.url) == query(page.url)
    finally:
        context.close()

    # Back: the view before the selection, then the step before; forward again.
    for expected_url, step in ((history[-2], start + 2), (history[-3], start + 1)):
        act(page, page.go_back, step)
        assert query(page.url) == query(expected_url)
        assert ("sp" in query(page.url)) == (page.locator("#sp-details").count() > 0)
    act(page, page.go_forward, start + 2)
    assert query(page.url) == query(history[-2])
    assert_no_console_errors(page)


def test_compare_mode_jumps_to_the_models_first_difference(
    page: Any, artifacts_dir: Path
) -> None:
    """Compare draws both fix sets side by side; "first difference" lands on the model's step."""
    page.goto("/")
    wait_tree(page)
    act(page, page.locator("#compare").check)
    assert query(page.url).get("compare") == "1", page.url
    wait_tree(page, tree_id="tree-base")

    fixes, base = url_fixes(page.url), url_fixes(page.url, "base")
    assert fixes != base, f"compare shows the same fix set twice: {page.url}"
    run, base_run = named_run("teaching-small", fixes), named_run("teaching-small", base)
    first = base_run.first_difference(run)
    assert first is not None

    state = act(page, lambda: page.click("#btn-first-diff"), first)
    assert query(page.url).get("step") == str(first), page.url
    assert query(page.url).get("compare") == "1", page.url
    base_state = wait_tree(page, tree_id="tree-base")
    assert drawn_statuses(state) == page_statuses(run.snapshot(first))
    assert drawn_statuses(base_state) == page_statuses(base_run.snapshot(first))
    assert drawn_statuses(state) != drawn_statuses(base_state)
    page.screenshot(path=str(artifacts_dir / "compare.png"), full_page=True)
    assert_no_console_errors(page)


def test_pasted_top_down_trace_replays_to_its_unsync_orphans(
    page: Any, artifacts_dir: Path
) -> None:
    """Pasting the top-down trace excerpt replays it; its last step lists the unsync orphans."""
    text = TOP_DOWN_TRACE.read_text()
    run = mmu_model.replay_trace(text, fixes=DEFAULT_FIXES)
    last = run.last_step("action")
    final = run.snapshot(last)
    orphans = {sp.id for sp in final.pages if sp.status == "orphan-unsync"}
    assert len(orphans) == final.orphans.unsync == 4

    page.goto("/")
    wait_tree(page)
    page.locator("#trace-form textarea").fill(text)
    act(page, lambda: page.locator("#trace-form [type=submit]").click(), run.default_step)
    assert re.fullmatch(r"[0-9a-f]{64}", query(page.url).get("trace", "")), page.url
    assert tree(page)["lastStep"] == str(last)

    blur(page)
    state = act(page, lambda: page.keyboard.press("End"), last)
    assert drawn_with_status(state, "orphan-unsync") == orphans
    assert drawn_statuses(state) == page_statuses(final)
    assert state["orphansUnsync"] == "4"
    stats = stats_of(page)
    assert stats == expected_stats(final, stats)
    assert stats["orphans (unsync)"] == 4
    assert run.replay is not None
    assert f"{run.replay.lines} trace lines" in text_of(page, "#replay")
    page.screenshot(path=str(artifacts_dir / "trace-replay.png"), full_page=True)
    assert_no_console_errors(page)


def test_bad_scenario_value_is_shown_next_to_its_field_and_nothing_else_changes(
    page: Any, artifacts_dir: Path
) -> None:
    """Submitting the scenario form with l2_mem_gib=0 puts the message by that field only.

    The rest of the page (URL, tree, narration, stats, the other fields' values) stays as it
    was. The one console line allowed is Chromium's own network log of the 422 response.
    """
    page.goto("/?v=1&scenario=teaching-small&step=7")
    before_tree = wait_tree(page, 7)
    url = page.url
    narration, stats = text_of(page, "#narration"), stats_of(page)
    fields = page.locator("#scenario-form [name]")
    values = {fields.nth(i).get_attribute("name"): fields.nth(i).input_value()
              for i in range(fields.count())}

    page.fill("#spec-l2_mem_gib", "0")
    with page.expect_response(lambda r: "l2_mem_gib=0" in r.url) as info:
        page.click("#scenario-submit")
    assert info.value.status == 422
    message = page.locator("#spec-l2_mem_gib ~ .field-error")
    message.wait_for(timeout=10_000)
    assert "l2_mem_gib" in message.inner_text()
    assert page.locator("#spec-l2_mem_gib").get_attribute("aria-invalid") == "true"
    assert page.evaluate("() => document.activeElement.id") == "spec-l2_mem_gib"
    assert page.locator("#scenario-form .field-error").count() == 1
    assert page.locator("#error").count() == 0
    page.locator("#scenario-form").screenshot(path=str(artifacts_dir / "form-error.png"))

    assert page.url == url
    after_tree = tree(page)
    assert (after_tree["step"], after_tree["signature"]) == ("7", before_tree["signature"])
    assert text_of(page, "#narration") == narration
    assert stats_of(page) == stats
    after = {fields.nth(i).get_attribute("name"): fields.nth(i).input_value()
             for i in range(fields.count())}
    assert after == values | {"l2_mem_gib": "0"}
    assert [e for e in page.console_errors if "status of 422" not in e] == []


def test_embed_mode_shows_tree_and_controls_only(page: Any) -> None:
    """embed=1 shows the tree and the step controls, and no form, also after a step."""
    run = named_run("teaching-small")
    page.goto("/?v=1&scenario=teaching-small&embed=1")
    wait_tree(page, run.default_step)

    def check() -> None:
        assert query(page.url).get("embed") == "1", page.url
        for control in ("#tree", "#step-slider", "#btn-first", "#btn-prev", "#btn-next",
                        "#btn-last", "#btn-play"):
            assert page.locator(control).is_visible(), f"{control} is not shown in embed mode"
        assert page.locator("form").count() == 0, "embed mode shows a form"
        for absent in ("#trace-form", "#scenario-form", "#copy-link", "#compare"):
            assert page.locator(absent).count() == 0, f"embed mode shows {absent}"

    check()
    act(page, lambda: page.click("#btn-next"), run.default_step + 1)
    check()
    assert_no_console_errors(page)


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_export_downloads_an_image_of_the_tree(page: Any, artifacts_dir: Path, fmt: str) -> None:
    """The export button downloads an image file of the tree (PNG magic bytes, or SVG markup)."""
    page.goto("/")
    wait_tree(page)
    with page.expect_download(timeout=30_000) as info:
        page.click(f"#export-{fmt}")
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith(f".{fmt}"), download.suggested_filename
    data = Path(download.path()).read_bytes()
    if fmt == "png":
        assert data.startswith(PNG_MAGIC), data[:16]
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 300, (width, height)
        assert height >= 200, (width, height)
    else:
        head = data.lstrip()[:200].decode("utf-8", "replace")
        assert head.startswith(("<svg", "<?xml")), head
        assert b"</svg>" in data
    (artifacts_dir / f"export.{fmt}").write_bytes(data)
    assert_no_console_errors(page)


def test_large_10k_scenario_renders_and_stays_responsive(
    page: Any, artifacts_dir: Path
) -> None:
    """large-10k draws every page (some folded) and steps; timings go to artifacts/timings.txt."""
    run = named_run("large-10k")
    snap = run.snapshot(run.default_step)

    started = time.monotonic()
    page.goto("/?v=1&scenario=large-10k", timeout=120_000)
    state = wait_tree(page, run.default_step, timeout_ms=120_000)
    first_tree_s = time.monotonic() - started

    facts = state["facts"]
    drawn = len(facts["pages"]) + sum(s["count"] for s in facts["summaries"])
    assert drawn == len(snap.pages) + len(snap.ghosts)
    assert drawn >= 10_000
    page.screenshot(path=str(artifacts_dir / "large-10k-tree.png"))

    blur(page)
    started = time.monotonic()
    nxt = act(page, lambda: page.keyboard.press("ArrowRight"), run.default_step + 1,
              timeout_ms=120_000)
    next_step_s = time.monotonic() - started
    nxt_snap = run.snapshot(run.default_step + 1)
    facts = nxt["facts"]
    assert len(facts["pages"]) + sum(s["count"] for s in facts["summaries"]) == (
        len(nxt_snap.pages) + len(nxt_snap.ghosts))

    line = (f"{datetime.now(UTC).isoformat(timespec='seconds')} large-10k "
            f"pages={len(snap.pages)} first_tree_s={first_tree_s:.2f} "
            f"next_step_s={next_step_s:.2f}")
    print(line)  # noqa: T201 - the timings are this test's report
    with (artifacts_dir.parent / "timings.txt").open("a") as out:
        out.write(line + "\n")
    assert first_tree_s < LARGE_SANITY_BOUND_S
    assert next_step_s < LARGE_SANITY_BOUND_S
    assert_no_console_errors(page)


# Every drawn point of the tree: its trace's meta, customdata and marker colour.
_POINTS_JS = """() => {
  const gd = document.getElementById("tree");
  const out = [];
  for (const t of gd.data) {
    const n = t.x ? t.x.length : 0;
    const colours = t.marker ? t.marker.color : undefined;
    for (let i = 0; i < n; i++) {
      out.push({meta: t.meta, cd: Array.isArray(t.customdata) ? t.customdata[i] : null,
                colour: Array.isArray(colours) ? colours[i] : colours,
                x: t.x[i], y: t.y[i]});
    }
  }
  return out;
}"""


def point_on_page(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where the tree's data point (x, y) is on the page, in CSS pixels (scrolled into view),
    once it stays put: a redraw that adds a legend row or a resize after the tree is drawn
    moves the plot, and a click at the old place hits a neighbouring node."""
    def where() -> tuple[float, float]:
        pos = page.evaluate(
            """([x, y]) => {
              const gd = document.getElementById("tree"), fl = gd._fullLayout;
              gd.scrollIntoView();
              const r = gd.getBoundingClientRect();
              return [r.left + fl._size.l + fl.xaxis.l2p(x),
                      r.top + fl._size.t + fl.yaxis.l2p(y)];
            }""",
            [x, y],
        )
        return pos[0], pos[1]

    last = where()
    for _ in range(50):  # up to 5 s
        page.wait_for_timeout(100)
        now = where()
        if now == last:
            return now
        last = now
    raise AssertionError(f"the tree kept moving: point ({x}, {y}) never settled")


def test_stepping_a_10k_tree_updates_its_nodes_as_the_model_says(page: Any) -> None:
    """Five steps of large-10k, each applied as a delta, each drawing the model's states.

    Each of these steps is an L1 write (l1_zap_4k) that makes the 512 PT pages under one PD
    unsync (the model's snapshot says which); a tree past COLLAPSE_THRESHOLD folds them into
    one summary node per parent and state. So after each step, per state, the pages drawn one
    by one plus the summary counts must equal the model's count of pages in that state; every
    page point has its state's colour (figures.STATUS_STYLES); and the step must have come as
    a change from the drawn view (the delta's base), not a whole figure.
    """
    from app.figures import STATUS_STYLES

    run = named_run("large-10k")
    start = run.default_step
    page.goto("/?v=1&scenario=large-10k", timeout=120_000)
    wait_tree(page, start, timeout_ms=120_000)
    changed_states = 0
    for step in range(start + 1, start + 6):
        before_url = page.evaluate("() => document.getElementById('tree').dataset.drawnUrl")
        blur(page)
        act(page, lambda: page.keyboard.press("ArrowRight"), step, timeout_ms=60_000)
        delta = page.evaluate("() => JSON.parse(document.getElementById('tree-delta').textContent)")
        assert delta["base"] == before_url, "the step was not sent as a delta"

        snap, prev = run.snapshot(step), run.snapshot(step - 1)
        want: dict[str, int] = {}
        for sp in (*snap.pages, *snap.ghosts):
            want[sp.status] = want.get(sp.status, 0) + 1
        got: dict[str, int] = {}
        statuses = page_statuses(snap)
        for point in page.evaluate(_POINTS_JS):
            meta, cd = point["meta"], point["cd"]
            if meta == "summary" or meta.startswith("group:"):
                got[cd[2]] = got.get(cd[2], 0) + cd[1]
            elif meta in STATUS_STYLES:
                assert statuses[cd[0]] == meta == cd[9], (step, cd)
                assert point["colour"] == STATUS_STYLES[meta][1], (step, cd)
                got[meta] = got.get(meta, 0) + 1
        assert got == want, step
        if page_statuses(prev) != statuses:
            changed_states += 1
    assert changed_states >= 3, "the model changed no page state in these steps"
    assert_no_console_errors(page)


def test_a_leak_group_marker_opens_into_its_pages(page: Any) -> None:
    """boot-loop-bottom-up booted 8 times ends with every page detached (543 of them, more
    than LEAK_FOLD_THRESHOLD): they fold into one marker per boot that detached them, level
    and state. Clicking a marker opens its group: `open=<boot>:<level>` joins the URL and
    the group's pages are drawn one by one, in their states; the other groups stay folded.

    Expected members come from the model: the detached pages of that level whose first
    boot-end snapshot with them detached is that boot (the current boot for the rest).
    """
    from app.graph import DETACHED

    spec = mmu_model.get_scenario("boot-loop-bottom-up").spec
    assert spec is not None
    run = mmu_model.run_scenario(spec.replace(boots=8))
    last = run.last_step("action")
    page.goto(f"/?v=1&scenario=boot-loop-bottom-up&boots=8&step={last}", timeout=120_000)
    wait_tree(page, last, timeout_ms=120_000)

    groups = [p for p in page.evaluate(_POINTS_JS) if p["meta"].startswith("group:")]
    assert len({g["cd"][3] for g in groups}) == 8, "not one group per boot"
    target = max(groups, key=lambda g: g["cd"][1])
    count, status, boot, level = target["cd"][1:5]
    pos = point_on_page(page, target["x"], target["y"])
    act(page, lambda: page.mouse.click(pos[0], pos[1]), last, timeout_ms=60_000)
    assert query(page.url).get("open") == f"{boot}:{level}", page.url

    snap = run.snapshot(last)
    first_boot: dict[int, int] = {}
    for b in run.per_boot:
        for sp in run.snapshot(b.action_step).pages:
            if sp.status in DETACHED:
                first_boot.setdefault(sp.id, b.boot)
    current = snap.action.boot if snap.action is not None else 8
    members = {sp.id: sp.status for sp in snap.pages if sp.status in DETACHED
               and sp.level == level and first_boot.get(sp.id, current) == boot}
    assert sum(1 for s in members.values() if s == status) >= count
    drawn = drawn_statuses(tree(page))
    assert {i: drawn.get(i) for i in members} == members
    still = [p for p in page.evaluate(_POINTS_JS) if p["meta"].startswith("group:")]
    assert not any(g["cd"][3] == boot and g["cd"][4] == level for g in still)
    assert len(still) > 0
    assert_no_console_errors(page)


def test_clicking_next_while_scrolled_keeps_the_scroll_position(page: Any) -> None:
    """Issue 14 item 1: scrolled 200 px down, a click on Next must not move the page.

    htmx keeps #tree (hx-preserve) by parking it elsewhere in the document during the swap;
    Chromium's scroll anchoring used to follow it there and jump to the bottom.
    """
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto("/?v=1&scenario=teaching-small&step=8")
    wait_tree(page, 8)
    page.evaluate("() => window.scrollTo(0, 200)")
    page.wait_for_function("() => window.scrollY === 200")
    act(page, lambda: page.click("#btn-next"), 9)
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.scrollY") == 200
    assert_no_console_errors(page)


def test_page_works_where_session_storage_is_denied(page: Any) -> None:
    """Issue 14 item 2: in a cross-site iframe, touching sessionStorage throws (SecurityError);
    the script must still draw the tree and answer the keys. Storage is denied here the way
    such an iframe denies it: reading window.sessionStorage throws."""
    page.add_init_script("""
      Object.defineProperty(window, "sessionStorage", {
        get() { throw new DOMException("denied", "SecurityError"); }, configurable: true});
    """)
    run = named_run("teaching-small")
    page.goto("/?v=1&scenario=teaching-small&embed=1")
    wait_tree(page, run.default_step)
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), run.default_step + 1)
    page.select_option("#speed", "250")  # the play speed is remembered only when it can be
    assert_no_console_errors(page)


def test_every_kernel_operation_of_a_step_is_readable_in_full(page: Any) -> None:
    """Issue 14 item 5: at teaching-small's step 7 the last operation says the PT "is now an
    orphan" (narration of an unlink without invalid_list); the operation list must show it,
    not clip it in a 320 px box."""
    page.goto("/?v=1&scenario=teaching-small&step=7")
    wait_tree(page, 7)
    item = page.locator("#narration ol.ops li", has_text="is now an orphan").first
    assert item.count() == 1
    clipped = page.evaluate(
        """() => {
          const ol = document.querySelector("#narration ol.ops");
          const li = [...ol.querySelectorAll("li")]
            .find((e) => /is now an orphan/.test(e.textContent));
          const o = ol.getBoundingClientRect(), r = li.getBoundingClientRect();
          return r.bottom > o.bottom + 0.5 || ol.scrollHeight > ol.clientHeight + 1;
        }"""
    )
    assert not clipped, "the operation list hides part of what happened"


def test_per_boot_chart_is_loaded_once_and_its_cursor_follows_the_step(page: Any) -> None:
    """teaching-small booted 3 times: the per-boot chart loads once; stepping across the end
    of boot 1 (BootStats.action_step is the last action of a boot) moves its dotted cursor
    to boot 2 without asking the server for the chart again."""
    spec = mmu_model.get_scenario("teaching-small").spec
    assert spec is not None
    run = mmu_model.run_scenario(spec.replace(boots=3))
    end_of_boot_1 = run.per_boot[0].action_step
    page.goto(f"/?v=1&scenario=teaching-small&boots=3&step={end_of_boot_1}")
    wait_tree(page, end_of_boot_1)
    # A function, not an expression: Playwright evals expression strings, which the page's
    # CSP (script-src 'self', no unsafe-eval) refuses.
    cursor_at = ("(boot) => { const c = document.getElementById('boots-chart'); "
                 "return !!(c && c._fullLayout && c.layout.shapes) "
                 "&& c.layout.shapes[0].x0 === boot; }")
    page.wait_for_function(cursor_at, arg=1, timeout=30_000)
    loads = [u for u in page.requests if "/boots?" in u]
    assert len(loads) == 1, loads
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), end_of_boot_1 + 1)
    assert run.snapshot(end_of_boot_1 + 1).action.boot == 2  # type: ignore[union-attr]
    page.wait_for_function(cursor_at, arg=2, timeout=10_000)
    assert [u for u in page.requests if "/boots?" in u] == loads
    assert_no_console_errors(page)
