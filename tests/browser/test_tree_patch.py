"""A step drawn by patching Plotly's SVG (static/treepatch.js) in Chromium.

A step of large-10k's populate phase adds a page under a level-1 summary node: the summary's
count, the ring and a link change, in traces Plotly has drawn before, with marker sizes and
colours it has drawn before. Such a step is drawn without a Plotly call, by setting the
points, labels and links on the elements Plotly drew. The reference for what that must
look like is Plotly itself: Plotly.redraw of the same figure data must leave the SVG as the
patch left it. And what reads Plotly's own state (hover, zoom) must see the step drawn.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.browser.test_visualizer import act, assert_no_console_errors, blur, wait_tree

VIEW = "/?v=1&scenario=large-10k&skip=0"

# Counts the Plotly calls the page makes (every one that redraws the tree).
_SPY_JS = """(() => {
  window.__plotlyCalls = 0;
  const wrap = setInterval(() => {
    if (!window.Plotly || Plotly.__spied) return;
    Plotly.__spied = true;
    for (const f of ["react", "restyle", "update", "relayout", "redraw"]) {
      const real = Plotly[f];
      Plotly[f] = function () { window.__plotlyCalls++; return real.apply(this, arguments); };
    }
    clearInterval(wrap);
  }, 1);
})();"""

# Every element of every drawn trace, with what places and styles it (a label group without
# a label is left out: Plotly itself keeps or drops those from one draw to the next; so is a
# group that draws nothing: Plotly drops an empty trace's group, a patch may leave it empty);
# and, under "groups", each group drawing something, in the layer's order, with its own
# attributes and the classes of its children.
_SVG_JS = """() => {
  const gd = document.getElementById("tree");
  const out = {groups: []};
  gd.querySelectorAll(".scatterlayer .trace").forEach((g) => {
    const meta = g.__data__[0].trace.meta;
    const elements = [...g.querySelectorAll("path.point, path.js-line, g.textpoint, text")]
      .filter((e) => !(e.tagName === "g" && !e.querySelector("text")))
      .map((e) => [e.tagName, e.getAttribute("class"), e.getAttribute("transform"),
                   e.getAttribute("d"), e.getAttribute("style"), e.getAttribute("x"),
                   e.getAttribute("y"), e.tagName === "text" ? e.textContent : null]);
    if (!elements.length) return;
    out[meta] = elements;
    out.groups.push([meta, g.getAttribute("class"), g.getAttribute("style"),
                     [...g.children].map((c) => c.getAttribute("class"))]);
  });
  return out;
}"""

_PLOTLY_REDRAW_JS = "() => Plotly.redraw(document.getElementById('tree')).then(() => true)"

# Each summary node: its id and count (customdata[0], [1]) and its pixel position.
_SUMMARIES_JS = """() => {
  const gd = document.getElementById("tree");
  const t = gd.data.find((trace) => trace.meta === "summary");
  const box = gd.querySelector(".nsewdrag").getBoundingClientRect();
  return t.customdata.map((c, j) => ({id: c[0], count: c[1],
    x: box.left + gd._fullLayout.xaxis.c2p(t.x[j]),
    y: box.top + gd._fullLayout.yaxis.c2p(t.y[j])}));
}"""


def _spied(page: Any, step: int, view: str = VIEW) -> None:
    page.context.add_init_script(_SPY_JS)
    page.goto(f"{view}&step={step}")
    wait_tree(page, step)


def _step(page: Any, step: int) -> bool:
    """One ArrowRight to `step`; whether it was drawn without a Plotly call."""
    calls = page.evaluate("() => window.__plotlyCalls")
    blur(page)
    act(page, lambda: page.keyboard.press("ArrowRight"), step)
    return bool(page.evaluate("() => window.__plotlyCalls") == calls)


def test_a_patched_step_leaves_the_svg_plotly_draws_from_the_same_data(page: Any) -> None:
    _spied(page, 3)
    patched = 0
    for step in range(4, 14):
        if not _step(page, step):
            continue
        patched += 1
        drawn = page.evaluate(_SVG_JS)
        assert page.evaluate(_PLOTLY_REDRAW_JS)
        assert page.evaluate(_SVG_JS) == drawn, step
    # Every step here changes the same kinds of node with pieces drawn before: at most the
    # first one or two (a count whose marker size is new) need Plotly.
    assert patched >= 7, patched
    assert_no_console_errors(page)


def test_hover_after_patched_steps_shows_the_step_drawn(page: Any) -> None:
    """Plotly's hover reads its own copy of the data: after steps it did not draw, hovering
    the summary node must show the count the page shows, not the count of Plotly's last
    draw."""
    _spied(page, 3)
    summary = _patched_steps_growing_a_summary(page)
    page.mouse.move(summary["x"] - 40, summary["y"] - 40)
    page.mouse.move(summary["x"], summary["y"], steps=4)
    text = _hover_label(page)
    assert f"{summary['count']} synced level-1 pages" in text, (summary, text)
    assert_no_console_errors(page)


def _patched_steps_growing_a_summary(page: Any) -> dict[str, Any]:
    """Steps 4..9 (at least 3 of them patched), which add pages under a summary node: that
    node, whose count Plotly has not drawn."""
    before = {node["id"]: node["count"] for node in page.evaluate(_SUMMARIES_JS)}
    patched = sum(_step(page, step) for step in range(4, 10))
    assert patched >= 3, patched
    grown = [node for node in page.evaluate(_SUMMARIES_JS)
             if node["count"] > before.get(node["id"], 0)]
    assert grown, before
    return dict(grown[-1])


def _hover_label(page: Any) -> str:
    label = page.locator("#tree .hoverlayer .hovertext")
    label.wait_for(timeout=5_000)
    return str(label.evaluate("(e) => e.textContent"))


def test_hover_with_the_pointer_resting_on_the_plot_shows_the_step_drawn(page: Any) -> None:
    """A reviewer steps with the pointer left on the plot, away from any node (no hover
    label up, so the steps are patched). The pointer is over Plotly's drag layer all
    along, so moving it onto a node makes no new pointerover; Plotly's hover must still
    read the step drawn: the grown summary node's hover shows its new count."""
    _spied(page, 3)
    box = page.evaluate("""() => { const r = document.querySelector("#tree .nsewdrag")
      .getBoundingClientRect(); return [r.left, r.bottom]; }""")
    page.mouse.move(box[0] + 5, box[1] - 5)  # the plot's bottom-left corner: no node there
    summary = _patched_steps_growing_a_summary(page)
    page.mouse.move(summary["x"], summary["y"], steps=8)
    text = _hover_label(page)
    assert f"{summary['count']} synced level-1 pages" in text, (summary, text)
    assert_no_console_errors(page)


def test_a_zoom_after_patched_steps_draws_the_step_drawn(page: Any) -> None:
    """A zoom redraws the traces from Plotly's own copy of the data (no pointer needed: a
    relayout from code, as the modebar's buttons make): what it draws must be the step the
    page shows, the same SVG Plotly draws from the figure data."""
    _spied(page, 3)
    patched = sum(_step(page, step) for step in range(4, 10))
    assert patched >= 3, patched
    page.evaluate("""() => { const gd = document.getElementById("tree");
      const r = gd._fullLayout.xaxis.range;
      return Plotly.relayout(gd, {"xaxis.range": [r[0], (r[0] + r[1]) / 2]}); }""")
    page.wait_for_timeout(100)
    zoomed = page.evaluate(_SVG_JS)
    assert page.evaluate(_PLOTLY_REDRAW_JS)
    assert page.evaluate(_SVG_JS) == zoomed
    counts = page.evaluate("""() => Object.fromEntries(document.getElementById("tree").data
      .filter((t) => t.x.length).map((t) => [t.meta, t.x.length]))""")
    points = {meta: sum(1 for e in elements if e[1] and e[1].startswith("point"))
              for meta, elements in zoomed.items() if meta != "groups"}
    assert {m: n for m, n in points.items() if m != "edges"} == \
        {m: n for m, n in counts.items() if m != "edges"}
    assert_no_console_errors(page)


def test_a_patched_label_reads_the_new_count(page: Any) -> None:
    """The label of a summary node whose count changes within its marker size (512 to 500:
    the same bit length, so the same size): TreePatch.patch draws the step and the label
    reads the new count, as Plotly draws it from the same data."""
    _spied(page, 6)
    relabelled = page.evaluate("""() => {
      const gd = document.getElementById("tree");
      const i = gd.data.findIndex((t) => t.meta === "summary");
      const copy = (t) => ({x: t.x.slice(), y: t.y.slice(), customdata: t.customdata.slice(),
        text: t.text.slice(), visible: t.visible, showlegend: t.showlegend,
        marker: {size: t.marker.size, color: t.marker.color}});
      const sent = gd.data.map(copy);
      const traces = gd.data.map(copy);
      traces[i].text[0] = "500";
      const axes = {x: gd.layout.xaxis.range, y: gd.layout.yaxis.range};
      return [TreePatch.patch(gd, [i], traces, sent, axes), gd.data[i].text[0]];
    }""")
    assert relabelled == [True, "500"]
    drawn = page.evaluate(_SVG_JS)
    assert "500" in [e[7] for e in drawn["summary"] if e[0] == "text"]
    assert page.evaluate(_PLOTLY_REDRAW_JS)
    assert page.evaluate(_SVG_JS) == drawn
    assert_no_console_errors(page)


def test_a_colour_the_trace_never_drew_is_patched_as_plotly_draws_it(page: Any) -> None:
    """A summary node (an open hexagon: the colour is its outline) and a synced page (a
    filled circle: the colour is its fill) turn a colour their trace has not drawn: the
    patch derives the style from one Plotly drew for the trace, and Plotly.redraw from
    the same data leaves the same SVG."""
    _spied(page, 6)
    recoloured = page.evaluate("""() => {
      const gd = document.getElementById("tree");
      const copy = (t) => ({x: t.x.slice(), y: t.y.slice(), customdata: t.customdata,
        text: t.text, visible: t.visible, showlegend: t.showlegend,
        marker: {size: t.marker.size, color: t.marker.color}});
      const sent = gd.data.map(copy);
      const traces = gd.data.map(copy);
      const changed = ["summary", "synced"].map((m) => gd.data.findIndex((t) => t.meta === m));
      for (const i of changed) {
        const n = traces[i].x.length;
        traces[i].marker.color = Array.from({length: n}, (_, j) => j ? sent[i].marker.color[j]
          ?? sent[i].marker.color : "#123456");
      }
      const axes = {x: gd.layout.xaxis.range, y: gd.layout.yaxis.range};
      return TreePatch.patch(gd, changed, traces, sent, axes);
    }""")
    assert recoloured is True
    drawn = page.evaluate(_SVG_JS)
    for meta in ("summary", "synced"):
        assert "rgb(18, 52, 86)" in drawn[meta][0][4], drawn[meta][0]  # #123456
    assert page.evaluate(_PLOTLY_REDRAW_JS)
    assert page.evaluate(_SVG_JS) == drawn
    assert_no_console_errors(page)


# The metas of the traces with points.
_KINDS_JS = """() => document.getElementById("tree").data.filter((t) => t.x.length)
  .map((t) => t.meta)"""


def test_a_kind_of_node_first_drawn_by_a_step_is_patched_as_plotly_draws_it(page: Any) -> None:
    """teaching-small from step 3 (skip=0): its later steps bring kinds of node the tree
    has not shown before on this page (unsync pages, leaks, ghosts of zapped pages: each
    drawn in its trace's default size and colour). Their traces were empty at the first
    draw, so Plotly drew nothing of them; the first draw parked a point off the plot in
    each to learn how Plotly draws it (TreePatch.park). So such a step is patched too, and
    what it draws is what Plotly.redraw draws from the same data, group by group and in
    Plotly's order."""
    _spied(page, 3, "/?v=1&scenario=teaching-small&skip=0")
    seen = set(page.evaluate(_KINDS_JS))
    firsts = []
    for step in range(4, 30):
        patched = _step(page, step)
        kinds = set(page.evaluate(_KINDS_JS))
        new = kinds - seen
        seen |= kinds
        if not new:
            continue
        firsts.append((step, sorted(new), patched))
        if patched:
            drawn = page.evaluate(_SVG_JS)
            assert page.evaluate(_PLOTLY_REDRAW_JS)
            assert page.evaluate(_SVG_JS) == drawn, step
    assert len(firsts) >= 2, firsts
    assert all(patched for _, _, patched in firsts), firsts
    assert_no_console_errors(page)


def test_a_marker_size_the_trace_never_drew_is_patched_as_plotly_draws_it(page: Any) -> None:
    """A summary node's marker grows with its count (app/figures.py park lists each size
    it can take). A summary node turning a size no summary of this page has been drawn in
    is patched, because the first draw parked a point of every such size off the plot;
    and Plotly.redraw from the same data leaves the same SVG."""
    _spied(page, 6)
    result = page.evaluate("""async () => {
      const gd = document.getElementById("tree");
      const delta = JSON.parse(document.getElementById("tree-delta").textContent);
      const run = await (await fetch(delta.layout)).json();
      const i = gd.data.findIndex((t) => t.meta === "summary");
      const drawn = new Set(gd.data[i].marker.size);
      const size = run.park.sizes.summary.find((s) => !drawn.has(s));
      const copy = (t) => ({x: t.x.slice(), y: t.y.slice(), customdata: t.customdata,
        text: t.text, visible: t.visible,
        marker: {size: Array.isArray(t.marker.size) ? t.marker.size.slice() : t.marker.size,
                 color: t.marker.color}});
      const sent = gd.data.map(copy);
      const traces = gd.data.map(copy);
      traces[i].marker.size[0] = size;
      const axes = {x: gd.layout.xaxis.range, y: gd.layout.yaxis.range};
      return [size, TreePatch.patch(gd, [i], traces, sent, axes)];
    }""")
    size, patched = result
    assert size is not None  # a size the page has not drawn a summary in
    assert patched is True
    drawn = page.evaluate(_SVG_JS)
    assert page.evaluate(_PLOTLY_REDRAW_JS)
    assert page.evaluate(_SVG_JS) == drawn
    assert_no_console_errors(page)


def test_the_first_steps_from_an_empty_tree_are_patched_as_plotly_draws_them(page: Any) -> None:
    """teaching-small's step 0 comes before the first guest action: no shadow page yet, so
    the tree is empty, and a draw of an empty tree leaves Plotly without its scatter layer
    (it drops the layer of a trace type with no points) and with no link ever drawn. The
    first draw parks a point in every trace, the links' included, and learns the layer;
    so step 1 (the first root: a node and its ring) and step 2 (the first link) are
    patched, and Plotly.redraw of the same data leaves the same SVG."""
    _spied(page, 0, "/?v=1&scenario=teaching-small&skip=0")
    assert page.evaluate(_KINDS_JS) == []
    for step in range(1, 6):
        assert _step(page, step), step
        drawn = page.evaluate(_SVG_JS)
        assert drawn["groups"], step  # it draws something: the patch put the layer back
        assert page.evaluate(_PLOTLY_REDRAW_JS)
        assert page.evaluate(_SVG_JS) == drawn, step
        assert page.evaluate(
            "() => document.querySelectorAll('#tree .scatterlayer').length") == 1, step
    assert "edges" in page.evaluate(_KINDS_JS)  # a link came and was patched in
    assert_no_console_errors(page)


# Counts the Plotly calls that draw #tree (not the per-boot chart's), by name.
_TREE_SPY_JS = """(() => {
  window.__treeCalls = [];
  const wrap = setInterval(() => {
    if (!window.Plotly || Plotly.__treeSpied) return;
    Plotly.__treeSpied = true;
    for (const f of ["react", "restyle", "update", "relayout", "redraw", "newPlot"]) {
      const real = Plotly[f];
      Plotly[f] = function (gd) {
        const div = typeof gd === "string" ? document.getElementById(gd) : gd;
        if (div && div.id === "tree") window.__treeCalls.push(f);
        return real.apply(this, arguments);
      };
    }
    clearInterval(wrap);
  }, 1);
})();"""


def test_a_first_draw_beside_unlabelled_leak_groups_is_patched_back(page: Any) -> None:
    """boot-loop-bottom-up runs 100 boots, more than GROUP_LABEL_MAX_BOOTS (24), so its leak
    groups carry no count label (text ""). The first draw parks a point of every group size
    with a label ("0") beside them, so Plotly draws a label for some points of the trace
    and none for others. Patching the parked points away must handle a point without a
    label (Plotly keeps its group and removes its <text>): then the first tree costs one
    Plotly call (the react), and Plotly.redraw of the same data leaves the same SVG."""
    rows = csv.DictReader(io.StringIO(
        page.request.get("/api/boots.csv?v=1&scenario=boot-loop-bottom-up").text()))
    step = int(next(row for row in rows if row["boot"] == "50")["action_step"])  # its end
    page.context.add_init_script(_TREE_SPY_JS)
    page.goto(f"/?v=1&scenario=boot-loop-bottom-up&step={step}")
    wait_tree(page, step)
    texts = page.evaluate("""() => document.getElementById("tree").data
      .filter((t) => t.meta.startsWith("group:")).flatMap((t) => t.text)""")
    assert texts  # leak groups drawn,
    assert set(texts) == {""}, texts  # none labelled
    assert page.evaluate("() => window.__treeCalls") == ["react"]
    drawn = page.evaluate(_SVG_JS)
    assert page.evaluate(_PLOTLY_REDRAW_JS)
    assert page.evaluate(_SVG_JS) == drawn
    assert_no_console_errors(page)


# Zooms #tree around the middle of its ranges, by `factor` on the x axis (and its square
# root on the y axis), as the modebar's zoom does (a relayout of the axis ranges).
_ZOOM_JS = """(factor) => { const gd = document.getElementById("tree");
  const xr = gd._fullLayout.xaxis.range, yr = gd._fullLayout.yaxis.range;
  const cx = (xr[0] + xr[1]) / 2, hx = (xr[1] - xr[0]) / 2 / factor;
  const cy = (yr[0] + yr[1]) / 2, hy = (yr[1] - yr[0]) / 2 / Math.sqrt(factor);
  return Plotly.relayout(gd, {"xaxis.range": [cx - hx, cx + hx],
                              "yaxis.range": [cy - hy, cy + hy]}).then(() => true); }"""


def test_steps_on_a_zoomed_plot_are_patched_as_plotly_draws_them(page: Any) -> None:
    """A zoom moves the axes, not the pieces: a patch computes pixels with Plotly's axes
    (c2p), so steps on a plot zoomed 4x are patched, and Plotly.redraw leaves the same SVG.
    Plotly cuts a link reaching more than 20 plot widths off the plot (scatter's
    maxScreensAway), so zoomed 200x, where large-10k's links from its root reach that far,
    a step that draws links goes to Plotly instead."""
    _spied(page, 3)
    assert page.evaluate(_ZOOM_JS, 4)
    for step in range(4, 9):
        assert _step(page, step), step
        drawn = page.evaluate(_SVG_JS)
        assert page.evaluate(_PLOTLY_REDRAW_JS)
        assert page.evaluate(_SVG_JS) == drawn, step
    assert page.evaluate(_ZOOM_JS, 50)  # 200x in all
    patched = [_step(page, step) for step in range(9, 12)]
    assert not any(patched), patched
    assert_no_console_errors(page)
