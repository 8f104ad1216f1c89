// Glue between htmx and Plotly: draw every figure embedded as JSON after each swap, turn
// clicks on tree nodes into `sp=<id>` views, play the timeline, keyboard stepping,
// "Copy link", PNG/SVG export. Everything else is server-rendered HTML driven by htmx.
(function () {
  "use strict";

  var PLOT_CONFIG = {
    responsive: true,
    displaylogo: false,
    // sendChartToCloud ("Share chart..."): posts the figure to a chart server; this page
    // shares views by URL and stays offline.
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "sendChartToCloud"],
  };
  var playing = false;
  var playTimer = null;
  // Storage can be denied (a cross-site iframe): then the play speed is not remembered.
  function stored(name) {
    try { return window.sessionStorage.getItem(name); } catch (e) { return null; }
  }
  function store(name, value) {
    try { window.sessionStorage.setItem(name, value); } catch (e) { /* not remembered */ }
  }
  var speedMs = Number(stored("mmu-speed") || 700);

  function $(id) { return document.getElementById(id); }

  // Whole figures embedded as JSON (the compare baseline, the per-boot chart).
  function renderFigures() {
    var scripts = document.querySelectorAll('script[type="application/json"][data-figure-for]');
    scripts.forEach(function (script) {
      var div = $(script.dataset.figureFor);
      if (!div || !window.Plotly || script.dataset.drawn) return;
      script.dataset.drawn = "1";  // a new figure comes in a new script element
      var fig = JSON.parse(script.textContent);
      Plotly.react(div, fig.data, fig.layout, plotConfig()).then(function () {
        if (div.id === "boots-chart") moveBootCursor();
        Plotly.Plots.resize(div);
      });
    });
  }

  function plotConfig() {
    return Object.assign({}, PLOT_CONFIG, { toImageButtonOptions: { filename: imageName() } });
  }

  // ---- the tree: the run's figure once, then each step's delta -----------------------------
  // The server sends, with every view, what changed since the view drawn here (whose URL
  // goes with each request as X-Mmu-Drawn): records of nodes set and dropped, edges added
  // and cut, the rings and the selection. `tree` holds what is drawn; fillTraces turns it
  // into the traces' arrays (as app/figures.py tree_figure does) for one Plotly.update.
  var layouts = {};  // layout URL -> Promise of {figure, x, y}
  var tree = null;   // {div, layoutUrl, layout, records: Map, edges: Map, url}
  var treeQueue = Promise.resolve();
  // The view the tree shows once the deltas queued are drawn: what the next request says
  // it has drawn (X-Mmu-Drawn), as a key press can send one before the last is drawn.
  var drawnUrl = null;

  function loadLayout(url) {
    if (!layouts[url]) {
      layouts[url] = fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error("layout " + r.status);
        return r.json();
      });
      layouts[url].catch(function () { delete layouts[url]; });
    }
    return layouts[url];
  }

  function updateTree() {
    var script = $("tree-delta");
    var div = $("tree");
    if (!script || !div || !window.Plotly) { tree = null; drawnUrl = null; return; }
    var delta = JSON.parse(script.textContent);
    drawnUrl = delta.url;
    treeQueue = treeQueue.then(function () {
      return loadLayout(delta.layout).then(function (layout) {
        return applyDelta(div, layout, delta);
      });
    }).catch(function (error) { console.error("tree update failed:", error); });
  }

  function applyDelta(div, layout, delta) {
    var fresh = !tree || tree.div !== div || tree.layoutUrl !== delta.layout;
    if (delta.base !== null && (fresh || tree.url !== delta.base)) {
      // A change from a view that is not the one drawn here: ask for the whole step.
      return refetchWhole(delta.url);
    }
    if (fresh || delta.base === null) {
      tree = { div: div, layoutUrl: delta.layout, layout: layout, records: new Map(),
               edges: new Map(), url: null };
    }
    delta.drop.forEach(function (key) { tree.records.delete(key); });
    Object.keys(delta.set).forEach(function (key) { tree.records.set(key, delta.set[key]); });
    delta.edges_cut.forEach(function (e) { tree.edges.delete(e[0] + ">" + e[1]); });
    delta.edges_add.forEach(function (e) { tree.edges.set(e[0] + ">" + e[1], e); });
    var traces = fillTraces(layout.figure.data, delta);
    // The step's note (how much is folded) is server-rendered HTML under the plot
    // (#tree-note), and the legend HTML above it (#tree-legend): in Plotly's figure, every
    // redraw laid them out again.
    var drawing;
    if (fresh || !div._fullLayout || div.dataset.layoutUrl !== delta.layout) {
      var data = layout.figure.data.map(function (t, i) {
        return Object.assign({}, t, traces[i], { marker: Object.assign({}, t.marker || {},
          traces[i].marker) });
      });
      // Drawn with points off the plot (one in each empty trace, the links' included, one
      // in each marker size a trace has not drawn: TreePatch.park), then patched back to
      // the step's own: what Plotly drew is learnt, so a step that first brings a kind of
      // node, a size or a link is patched too.
      var parked = TreePatch.park(data, layout.figure.data, layout.park);
      TreePatch.redrawing(div);
      drawing = Plotly.react(div, data, layout.figure.layout, plotConfig()).then(function () {
        div.dataset.layoutUrl = delta.layout;
        TreePatch.watch(div);
        if (parked.length && !TreePatch.patch(div, parked, traces, data)) {
          return unparked(div, parked, traces);
        }
      }).then(function () {
        if (!div.dataset.clickBound) {
          div.dataset.clickBound = "1";
          div.on("plotly_click", onTreeClick);
        }
      });
    } else {
      drawing = redraw(div, traces);
    }
    // What was sent counts once Plotly has drawn it, and only for the tree it was drawn for
    // (a refetch may have started a new one meanwhile): a failed draw leaves the last
    // drawn state for the next step to differ from.
    var state = tree;
    return drawing.then(function () {
      if (tree !== state) return;
      state.sent = traces;
      state.url = delta.url;  // the state the next delta starts from
      div.dataset.drawnUrl = delta.url;
      showLegend(div);
      // The plot's box changed (compare mode's narrower pane, say): Plotly draws to a size
      // of its own, which only a window resize would otherwise update.
      var size = div._fullLayout;
      if (size && (div.clientWidth !== size.width || div.clientHeight !== size.height)) {
        return Plotly.Plots.resize(div);
      }
    });
  }

  // The parked traces (TreePatch.park) back to the step's own points through Plotly, when
  // they could not be patched so (a hover label up as the figure came, or links reaching
  // further off a zoomed plot than Plotly draws them).
  function unparked(div, parked, traces) {
    TreePatch.redrawing(div);
    var update = { x: [], y: [], customdata: [], text: [], "marker.size": [],
                   "marker.color": [] };
    parked.forEach(function (i) {
      var t = traces[i];
      update.x.push(t.x); update.y.push(t.y); update.customdata.push(t.customdata);
      update.text.push(t.text); update["marker.size"].push(t.marker.size);
      update["marker.color"].push(t.marker.color);
    });
    return Plotly.restyle(div, update, parked);
  }

  // One step's redraw: Plotly recomputes and redraws the whole figure on any restyle, so
  // only the traces whose points differ from what was sent last go to it, a step that
  // changes nothing drawn (a quiet step after a quiet one) costs no redraw at all, and one
  // whose every piece Plotly has drawn before is drawn by patching its SVG
  // (static/treepatch.js).
  function redraw(div, traces) {
    var changed = [];
    var sent = tree.sent || [];  // none: a new tree state on the drawn figure, send them all
    traces.forEach(function (t, i) { if (!sameTrace(sent[i], t)) changed.push(i); });
    if (!changed.length) return Promise.resolve();
    if (TreePatch.patch(div, changed, traces, sent)) {
      return Promise.resolve();
    }
    TreePatch.redrawing(div);
    var update = { x: [], y: [], customdata: [], text: [], "marker.size": [],
                   "marker.color": [], visible: [] };
    changed.forEach(function (i) {
      var t = traces[i];
      update.x.push(t.x); update.y.push(t.y); update.customdata.push(t.customdata);
      update.text.push(t.text); update["marker.size"].push(t.marker.size);
      update["marker.color"].push(t.marker.color);
      update.visible.push(shownAs(div, i, t.visible));
    });
    return Plotly.restyle(div, update, changed);
  }

  // A trace hidden by its legend button ('legendonly') stays hidden when a step changes
  // it, and when it comes back after a step that left it empty.
  function shownAs(div, i, drawn) {
    var now = div.data && div.data[i] ? div.data[i].visible : true;
    var hidden = tree.legendOnly || (tree.legendOnly = {});
    if (now === "legendonly") hidden[i] = true;
    else if (now !== false) delete hidden[i];
    return drawn ? (hidden[i] ? "legendonly" : true) : false;
  }

  // The legend (#tree-legend, app/legend.py) shows an entry for each kind of node the tree
  // draws at this step, its button pressed unless the user hid that kind.
  function showLegend(div) {
    var legend = $("tree-legend");
    if (!legend || !div.data) return;
    var byMeta = {};
    div.data.forEach(function (t) { byMeta[t.meta] = t; });
    legend.querySelectorAll("li[data-meta]").forEach(function (li) {
      var t = byMeta[li.dataset.meta];
      var hidden = !t || !t.x || t.x.length === 0;
      if (li.hidden !== hidden) li.hidden = hidden;
      var pressed = t && t.visible === "legendonly" ? "false" : "true";
      var button = li.firstElementChild;
      if (button.getAttribute("aria-pressed") !== pressed) {
        button.setAttribute("aria-pressed", pressed);
      }
    });
  }

  // A legend button hides its kind of node, or shows it again (Plotly's 'legendonly':
  // shownAs keeps it so while steps change that trace).
  function toggleKind(button) {
    var div = $("tree");
    var meta = button.parentNode.dataset.meta;
    if (!div || !div.data || !window.Plotly) return;
    var i = div.data.findIndex(function (t) { return t.meta === meta; });
    if (i < 0) return;
    treeQueue = treeQueue.then(function () {
      var hide = div.data[i].visible !== "legendonly";
      TreePatch.redrawing(div);
      return Plotly.restyle(div, { visible: hide ? "legendonly" : true }, [i]);
    }).then(function () { showLegend(div); })
      .catch(function (error) { console.error("legend toggle failed:", error); });
  }

  function sameTrace(a, b) {
    if (!a || a.visible !== b.visible) return false;
    if (a.marker.size !== b.marker.size && !sameArray(a.marker.size, b.marker.size)) return false;
    if (a.marker.color !== b.marker.color && !sameArray(a.marker.color, b.marker.color)) {
      return false;
    }
    // customdata entries are the records' own arrays: a record the delta set is a new one.
    return sameArray(a.x, b.x) && sameArray(a.y, b.y) && sameArray(a.text, b.text) &&
      sameArray(a.customdata, b.customdata);
  }

  function sameArray(a, b) {
    if (!Array.isArray(a) || !Array.isArray(b)) return a === b;
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function fillTraces(base, delta) {
    var layout = tree.layout;
    var out = base.map(function (t) {
      var m = t.marker || {};
      return { x: [], y: [], customdata: [], text: [],
               marker: { size: [], color: [] }, defaults: [m.size, m.color] };
    });
    var index = {};
    base.forEach(function (t, i) { index[t.meta] = i; });
    function at(key) {
      var rec = tree.records.get(key);
      if (rec && rec[1] !== null) return [rec[1], rec[2]];
      var id = Number(key);
      return [layout.x[id], layout.y[id]];
    }
    tree.records.forEach(function (rec, key) {
      var t = out[rec[0]];
      var p = at(key);
      t.x.push(p[0]); t.y.push(p[1]); t.customdata.push(rec[6]);
      t.marker.size.push(rec[3] !== null ? rec[3] : t.defaults[0]);
      t.marker.color.push(rec[4] !== null ? rec[4] : t.defaults[1]);
      t.text.push(rec[5] !== null ? rec[5] : "");
    });
    var edges = out[index.edges];
    tree.edges.forEach(function (e) {
      var a = at(e[0]), b = at(e[1]);
      edges.x.push(a[0], b[0], null); edges.y.push(a[1], b[1], null);
    });
    var rings = out[index.changed];
    delta.rings.forEach(function (r) {
      var p = at(r[0]);
      rings.x.push(p[0]); rings.y.push(p[1]); rings.marker.size.push(r[1]);
    });
    var chosen = out[index.selected];
    delta.selected.forEach(function (key) {
      var p = at(key);
      chosen.x.push(p[0]); chosen.y.push(p[1]);
    });
    // Compare mode: the pages the other run does not hold in the same state.
    var outlined = out[index.differs];
    (delta.differs || []).forEach(function (key) {
      if (!tree.records.has(key)) return;
      var p = at(key);
      outlined.x.push(p[0]); outlined.y.push(p[1]);
    });
    out.forEach(function (t, i) {
      var meta = base[i].meta;
      // Every trace is visible, empty or not (Plotly draws nothing of an empty one): a
      // trace made visible or invisible has Plotly draw the whole figure, where a kind of
      // node appearing is otherwise patched (static/treepatch.js).
      t.visible = true;
      if (meta === "edges") { t.marker = { size: 1, color: base[i].line.color }; t.customdata = []; }
      else if (meta === "changed" || meta === "selected" || meta === "differs") {
        t.marker = { size: meta === "changed" ? t.marker.size : t.defaults[0],
                     color: t.defaults[1] };
      }
      delete t.defaults;
    });
    return out;
  }

  // The element a view request made here comes from. htmx holds one request per element
  // and queues the next (dropping any queued before it), so it is one that every view
  // brings anew: the step buttons' row, which has no value of its own to send (#tree-panel
  // is updated in place, not swapped).
  function requestSource() { return $("step-buttons") || $("tree-panel"); }

  function refetchWhole(url) {
    tree = null;
    drawnUrl = null;
    htmx.ajax("GET", url, { source: requestSource(), target: "#view", swap: "outerHTML" });
  }

  // An answer for the URL the page is at already (a refetch of the whole view after a
  // delta could not be applied) replaces its history entry instead of pushing a second
  // one, so Back goes to the step before.
  document.addEventListener("htmx:beforeHistoryUpdate", function (event) {
    var update = event.detail && event.detail.history;
    if (update && update.type === "push" &&
        update.path === window.location.pathname + window.location.search) {
      update.type = "replace";
    }
  });

  // ---- the per-boot chart: loaded once per run, outside #view; a step moves its cursor ----
  function syncBootsPanel() {
    var ref = $("boots-ref");
    var slot = $("boots-slot");
    if (!slot) return;
    var url = ref ? ref.dataset.url : "";
    if (!url) { if (slot.firstChild) slot.textContent = ""; return; }
    var panel = $("boots-panel");
    if (panel && panel.dataset.url === url) { moveBootCursor(); return; }
    if (slot.dataset.loading === url) return;
    slot.dataset.loading = url;
    slot.innerHTML = '<section id="boots-panel" class="panel"><p>Loading the per-boot chart ' +
      "(runs the scenario with and without track-write-zap)…</p></section>";
    htmx.ajax("GET", url, { source: slot, target: "#boots-slot", swap: "innerHTML" })
      .then(function () {
      delete slot.dataset.loading;
    });
  }

  function moveBootCursor() {
    var ref = $("boots-ref");
    var chart = $("boots-chart");
    if (!ref || !chart || !chart._fullLayout || !window.Plotly) return;
    var boot = Number(ref.dataset.boot);
    var shapes = chart.layout.shapes || [];
    if (!shapes.length || (shapes[0].x0 === boot && shapes[0].x1 === boot)) return;
    Plotly.relayout(chart, { "shapes[0].x0": boot, "shapes[0].x1": boot });
  }

  // The server names exports (app/naming.py): scenario, fix set(s), grain and step.
  function imageName() {
    var panel = $("tree-panel");
    if (panel && panel.dataset.exportName) return panel.dataset.exportName;
    var step = panel ? panel.dataset.step : "0";
    var grain = panel ? panel.dataset.grain : "action";
    return "shadow-tree-" + grain + "-step-" + step;
  }

  // Compare mode: one legend of every mark, above both plots (_compare.html.jinja).
  function comparing() {
    var panel = $("tree-panel");
    return !!panel && panel.dataset.compare === "1";
  }

  function onTreeClick(event) {
    if (!event || !event.points || !event.points.length) return;
    var point = event.points[0];
    var data = point.customdata;
    if (!Array.isArray(data)) return;
    var id = Number(data[0]);
    var panel = $("tree-panel");
    if (!panel) return;
    if (!(id >= 0) && data.length === 5) {
      // A folded leak group [id, count, state, boot, level]: open it (or close it again).
      var key = data[3] + ":" + data[4];
      var open = panel.dataset.open ? panel.dataset.open.split(",") : [];
      var at = open.indexOf(key);
      if (at >= 0) open.splice(at, 1); else open.push(key);
      htmx.ajax("GET", panel.dataset.openUrl + (open.length ? "&open=" + open.join(",") : ""),
                { source: requestSource(), target: "#view", swap: "outerHTML" });
      return;
    }
    if (!(id >= 0)) {
      // A summary node: select the parent the folded pages hang under (if any).
      if (data[3] === null || data[3] === undefined) return;
      id = Number(data[3]);
      if (!(id >= 0)) return;
    }
    scrollDetails = true;
    htmx.ajax("GET", panel.dataset.selectUrl + id, {
      source: requestSource(), target: "#view", swap: "outerHTML",
    });
  }

  // ---- timeline: play / pause ---------------------------------------------------------------
  function setPlaying(on) {
    playing = on;
    if (playTimer) { clearTimeout(playTimer); playTimer = null; }
    var button = $("btn-play");
    if (button) {
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "⏸ Pause" : "▶ Play";
    }
    if (on) scheduleNext(0);
  }

  function scheduleNext(delay) {
    if (playTimer) clearTimeout(playTimer);
    playTimer = setTimeout(function () {
      playTimer = null;
      if (!playing) return;
      var next = $("btn-next");
      if (!next || next.disabled) { setPlaying(false); return; }
      htmx.ajax("GET", next.getAttribute("hx-get"), {
        source: next, target: "#view", swap: "outerHTML", headers: { "X-Mmu-Play": "1" },
      });
    }, delay);
  }

  function togglePlay() {
    var button = $("btn-play");
    if (!playing && button && button.dataset.atEnd === "true") {
      var first = $("btn-first");
      if (first && !first.disabled) first.click();  // replay from the start
    }
    setPlaying(!playing);
  }

  // ---- keyboard: steps go straight to the target step, so key smashing never queues
  // a pile of requests: presses made while a step is loading move the target (counted from
  // the step being loaded, so N presses move N steps), and the view catches up once that
  // step has been drawn.
  var busy = false;
  var pendingStep = null;
  var loadingStep = null;  // the step the request in flight asked for

  function stepInfo() {
    var panel = $("tree-panel");
    var slider = $("step-slider");
    if (!panel || !slider) return null;
    return {
      step: Number(panel.dataset.step), last: Number(panel.dataset.lastStep),
      url: slider.getAttribute("hx-get"),
    };
  }

  function goToStep(target) {
    var info = stepInfo();
    if (!info) return;
    target = Math.max(0, Math.min(info.last, target));
    if (busy) { pendingStep = target; return; }
    if (target === info.step) return;
    loadingStep = target;
    htmx.ajax("GET", info.url + "&step=" + target, {
      source: requestSource(), target: "#view", swap: "outerHTML",
    });
  }

  // ---- keyboard page selection: [ and ] walk the drawn pages in reading order (top level
  // first, then left to right, as the tree is laid out), Escape clears the selection.
  function drawnPages() {
    if (!tree || !tree.layout) return [];
    var pages = [];
    tree.records.forEach(function (rec, key) {
      var cd = rec[6];
      if (!Array.isArray(cd) || !(Number(cd[0]) >= 0) || cd.length < 10) return;
      var x = rec[1] !== null ? rec[1] : tree.layout.x[Number(key)];
      var y = rec[2] !== null ? rec[2] : tree.layout.y[Number(key)];
      pages.push({ id: Number(cd[0]), x: x, y: y });
    });
    pages.sort(function (a, b) { return (b.y - a.y) || (a.x - b.x) || (a.id - b.id); });
    return pages;
  }

  function selectedId() {
    var sp = new URLSearchParams(window.location.search).get("sp");
    return sp !== null && sp !== "" && Number(sp) >= 0 ? Number(sp) : null;
  }

  function selectPage(delta) {
    var panel = $("tree-panel");
    var pages = drawnPages();
    if (!panel || busy || !pages.length) return;
    var current = selectedId();
    var at = -1;
    pages.forEach(function (p, i) { if (p.id === current) at = i; });
    var next = at < 0 ? (delta > 0 ? 0 : pages.length - 1)
                      : Math.max(0, Math.min(pages.length - 1, at + delta));
    if (pages[next].id === current) return;
    scrollDetails = true;
    htmx.ajax("GET", panel.dataset.selectUrl + pages[next].id,
              { source: requestSource(), target: "#view", swap: "outerHTML" });
  }

  function clearSelection() {
    var close = document.querySelector("#sp-details a.close");
    if (close && !busy) close.click();
  }

  // A selection made from the tree (click or key) brings its details into view.
  var scrollDetails = false;
  function showDetails() {
    if (!scrollDetails) return;
    scrollDetails = false;
    var details = $("sp-details");
    if (!details) return;
    var r = details.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) details.scrollIntoView({ block: "nearest" });
  }

  function onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var t = event.target;
    var tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    // A checkbox (a fix, compare) has no use for the arrows: they keep stepping after a toggle.
    var checkbox = tag === "input" && t.type === "checkbox";
    if ((tag === "input" && !checkbox) || tag === "textarea" || tag === "select" ||
        (t && t.isContentEditable)) return;
    if (event.key === "[" || event.key === "]") {
      if (checkbox) return;
      event.preventDefault();
      selectPage(event.key === "]" ? 1 : -1);
      return;
    }
    if (event.key === "Escape" && !checkbox) { clearSelection(); return; }
    if (event.key === " " || event.key === "Spacebar") {
      if (tag === "button" || tag === "a" || checkbox) return;  // the control handles Space
      if (!$("btn-play")) return;
      event.preventDefault();
      togglePlay();
      return;
    }
    var info = stepInfo();
    if (!info) return;
    var base = pendingStep !== null ? pendingStep
             : busy && loadingStep !== null ? loadingStep : info.step;
    var target = null;
    if (event.key === "ArrowLeft") target = base - 1;
    else if (event.key === "ArrowRight") target = base + 1;
    else if (event.key === "Home") target = 0;
    else if (event.key === "End") target = info.last;
    if (target === null) return;
    event.preventDefault();
    if (playing) setPlaying(false);
    goToStep(target);
  }

  // ---- copy link, exports -------------------------------------------------------------------
  function copyLink(button) {
    var url = new URL(button.dataset.url, window.location.origin).href;
    var status = $("copy-status");
    function done(text) { if (status) status.textContent = text; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(url).then(function () { done("Copied."); },
        function () { fallbackCopy(url); done("Copied."); });
    } else {
      fallbackCopy(url);
      done("Copied.");
    }
  }

  function fallbackCopy(url) {
    var input = $("share-url");
    if (!input) return;
    input.value = url;
    input.select();
    try { document.execCommand("copy"); } catch (e) { /* the URL stays selected */ }
  }

  // The embed snippet (an <iframe>, built by the server: app/embeds.py).
  function copyEmbed(button) {
    var text = button.dataset.snippet || "";
    var status = $("copy-status");
    function done(msg) { if (status) status.textContent = msg; }
    function fallback() {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      done(ok ? "Embed code copied." : "Copy failed: the embed code is " + text);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done("Embed code copied."); },
                                               fallback);
    } else {
      fallback();
    }
  }

  function exportImage(format) {
    var div = $("tree");
    if (!div || !window.Plotly) return;
    var base = $("tree-base");
    if (comparing() && base && base._fullLayout) { exportBoth(format, base, div); return; }
    var legendBand = div.layout.legend.maxheight;  // forImage draws the legend above
    Plotly.downloadImage(forImage(div), {
      format: format, filename: imageName(),
      width: div.clientWidth || 1200, height: (div.clientHeight || 500) + legendBand,
    });
  }

  // What an image of the tree draws: the figure with the step's note under the plot and,
  // outside compare mode, the legend above it (the page shows both as HTML: #tree-note,
  // #tree-legend), drawn by Plotly in the band the figure's legend.maxheight gives it.
  function forImage(div) {
    var note = $("tree-note");
    var text = note ? note.textContent.replace(/\s+/g, " ").trim() : "";
    var layout = Object.assign({}, div.layout);
    if (text) {
      layout.annotations = [{
        text: escapeXml(text), xref: "paper", yref: "paper", x: 0, y: 0, yanchor: "top",
        showarrow: false, font: { size: 14, color: "#555555" },
      }];
    }
    var data = div.data;
    if (!comparing()) {
      layout.showlegend = true;
      layout.margin = Object.assign({}, layout.margin,
                                    { t: layout.margin.t + layout.legend.maxheight });
      data = div.data.map(function (t) {
        return Object.assign({}, t, { showlegend: t.meta !== "edges" && t.x.length > 0 });
      });
    }
    return { data: data, layout: layout };
  }

  // Both compare panes in one image: left and right, each under its title.
  var TITLE_PX = 28;
  function paneTitle(id) {
    var el = $(id);
    return el ? el.textContent.replace(/\s+/g, " ").trim() : "";
  }

  function exportBoth(format, left, right) {
    var w = Math.max(left.clientWidth, right.clientWidth) || 600;
    var h = Math.max(left.clientHeight, right.clientHeight) || 460;
    var opts = { format: format, width: w, height: h };
    var titles = [paneTitle("compare-left-title"), paneTitle("compare-right-title")];
    var images = [Plotly.toImage(left, opts), Plotly.toImage(forImage(right), opts)];
    Promise.all(images).then(function (urls) {
      if (format === "svg") return combineSvg(urls, titles, w, h);
      return combinePng(urls, titles, w, h);
    }).then(function (href) {
      var a = document.createElement("a");
      a.href = href;
      a.download = imageName() + "." + format;
      document.body.appendChild(a);
      a.click();
      a.remove();
      if (href.indexOf("blob:") === 0) setTimeout(function () { URL.revokeObjectURL(href); }, 10000);
    }).catch(function (error) { console.error("export failed:", error); });
  }

  function svgText(url) {
    var comma = url.indexOf(",");
    var head = url.slice(0, comma);
    var body = url.slice(comma + 1);
    return /;base64/.test(head) ? atob(body) : decodeURIComponent(body);
  }

  function escapeXml(text) {
    return text.replace(/[<>&"]/g, function (c) {
      return { "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" }[c];
    });
  }

  function combineSvg(urls, titles, w, h) {
    var parts = urls.map(function (url, i) {
      var svg = svgText(url).replace(/^<\?xml[^>]*>\s*/, "");
      // Place each pane: its root <svg> gets an offset (attributes of the nested element).
      return '<text x="' + (i * w + 8) + '" y="19" font-family="sans-serif" font-size="15">' +
        escapeXml(titles[i]) + "</text>" +
        svg.replace(/^<svg/, '<svg x="' + i * w + '" y="' + TITLE_PX + '"');
    });
    var whole = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" ' +
      'width="' + 2 * w + '" height="' + (h + TITLE_PX) + '">' +
      '<rect width="100%" height="100%" fill="#ffffff"/>' + parts.join("") + "</svg>";
    return URL.createObjectURL(new Blob([whole], { type: "image/svg+xml" }));
  }

  function combinePng(urls, titles, w, h) {
    return Promise.all(urls.map(function (url) {
      return new Promise(function (resolve, reject) {
        var img = new Image();
        img.onload = function () { resolve(img); };
        img.onerror = reject;
        img.src = url;
      });
    })).then(function (images) {
      var canvas = document.createElement("canvas");
      canvas.width = 2 * w;
      canvas.height = h + TITLE_PX;
      var ctx = canvas.getContext("2d");
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.fillStyle = "#1a1a1a";
      ctx.font = "15px sans-serif";
      images.forEach(function (img, i) {
        ctx.fillText(titles[i], i * w + 8, 19, w - 16);
        ctx.drawImage(img, i * w, TITLE_PX, w, h);
      });
      return canvas.toDataURL("image/png");
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (!target) return;
    if (target.id === "btn-play") { event.preventDefault(); togglePlay(); }
    else if (target.parentNode && target.parentNode.dataset.meta &&
             target.closest("#tree-legend")) { event.preventDefault(); toggleKind(target); }
    else if (target.id === "copy-link") { event.preventDefault(); copyLink(target); }
    else if (target.id === "copy-embed") { event.preventDefault(); copyEmbed(target); }
    else if (target.id === "export-png" || target.id === "export-svg") {
      event.preventDefault();
      exportImage(target.dataset.format);
    } else if (playing && /^btn-(first|prev|next|last)$/.test(target.id) && event.isTrusted) {
      setPlaying(false);
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target && event.target.id === "speed") {
      speedMs = Number(event.target.value) || 700;
      store("mmu-speed", String(speedMs));
    }
  });

  function restoreControls() {
    var speed = $("speed");
    if (speed) speed.value = String(speedMs);
    if (speed && speed.value !== String(speedMs)) speed.value = "700";
    var button = $("btn-play");
    if (button) {
      button.setAttribute("aria-pressed", playing ? "true" : "false");
      button.textContent = playing ? "⏸ Pause" : "▶ Play";
    }
  }

  // Screen readers: #narration is swapped with the view, and a freshly inserted live region
  // is rarely read out, so the step's one-paragraph summary goes to the persistent #announce.
  var lastAnnounced = null;
  function announceStep(initial) {
    var summary = $("step-summary");
    var live = $("announce");
    if (!summary || !live) return;
    var text = summary.textContent.replace(/\s+/g, " ").trim();
    if (!initial && text !== lastAnnounced) live.textContent = text;
    lastAnnounced = text;
  }

  function afterSettle(event) {
    // The element settled: #view (swapped whole, or the target of a step whose panels came
    // out of band and were patched in place), or another part (the per-boot chart), which
    // says nothing of the step being loaded.
    var viewSwapped = !event || event.type !== "htmx:afterSettle" ||
      !!(event.target && event.target.id === "view");
    if (!viewSwapped) { renderFigures(); return; }
    busy = false;
    loadingStep = null;
    var view = $("view");  // the tab title names the step the view shows
    if (view && view.dataset.title && document.title !== view.dataset.title) {
      document.title = view.dataset.title;
    }
    if (viewSwapped && (oobMissed || document.querySelector("#view [data-kept]"))) {
      // A panel the answer left for this page to keep, or one it sent out of band, was
      // not here: get the whole view.
      oobMissed = false;
      refetchWhole(view.dataset.url);
      return;
    }
    if (viewSwapped) {
      updateTree();
      syncBootsPanel();
    }
    renderFigures();
    restoreControls();
    showDetails();
    announceStep(!event || event.type === "DOMContentLoaded");
    if (pendingStep !== null) {
      var target = pendingStep;
      pendingStep = null;
      goToStep(target);
    } else if (playing) {
      var next = $("btn-next");
      if (!next || next.disabled) setPlaying(false);
      else scheduleNext(speedMs);
    }
  }

  // A step of the view drawn here comes as its changed panels, out of band (HX-Reswap:
  // none; templates/viz.html.jinja step_update). #tree-panel is updated in place, so
  // Plotly's #tree stays where it is: moving it (even by moveBefore) restyles its SVG.
  // Every other panel of a step is patched in place (patchPanel): a step changes a few
  // numbers, links and labels in each, and replacing a whole panel costs the style, layout
  // and htmx set-up of all its elements again.
  var oobMissed = false;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var d = event.detail;
    var fresh = d && d.fragment && d.fragment.firstElementChild;
    if (!d.target || !fresh || fresh.id !== d.target.id || fresh.tagName !== d.target.tagName) {
      return;
    }
    d.shouldSwap = false;
    if (fresh.id === "tree-panel") updatePanel(d.target, fresh);
    else patchPanel(d.target, fresh);
  });
  document.addEventListener("htmx:oobErrorNoTarget", function () { oobMissed = true; });

  function updatePanel(panel, fresh) {
    Array.prototype.slice.call(panel.attributes).forEach(function (a) {
      if (!fresh.hasAttribute(a.name)) panel.removeAttribute(a.name);
    });
    Array.prototype.slice.call(fresh.attributes).forEach(function (a) {
      if (a.name !== "hx-swap-oob" && panel.getAttribute(a.name) !== a.value) {
        panel.setAttribute(a.name, a.value);
      }
    });
    // The panel's kept children (hx-preserve: the plot, the legend) stay where they are;
    // every other child is the fresh one, in the fresh order around them.
    var kept = Array.prototype.filter.call(panel.children, function (n) {
      return n.hasAttribute("hx-preserve");
    });
    Array.prototype.slice.call(panel.childNodes).forEach(function (n) {
      if (kept.indexOf(n) < 0) panel.removeChild(n);
    });
    var next = 0;  // the first kept child not yet passed in the fresh order
    Array.prototype.slice.call(fresh.childNodes).forEach(function (n) {
      if (n.nodeType === 1 && n.hasAttribute("hx-preserve") && next < kept.length &&
          kept[next].id === n.id) { next += 1; return; }
      panel.insertBefore(n, next < kept.length ? kept[next] : null);
    });
    var view = $("view");  // the view's own marks, as a whole swap would have set them
    if (view) { view.dataset.title = fresh.dataset.title; view.dataset.url = fresh.dataset.url; }
  }

  // Make `old` what `fresh` is with idiomorph: elements it can match (by id, then by tag)
  // are kept and their attributes, text and form values set where they differ; the focus
  // stays on its control. htmx then sets up again only the elements whose attributes
  // changed (htmx.process compares each element's attribute hash).
  function patchPanel(old, fresh) {
    Idiomorph.morph(old, fresh, { morphStyle: "outerHTML" });
    htmx.process(old);
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("htmx:afterSettle", afterSettle);
  document.addEventListener("htmx:historyRestore", afterSettle);
  // Every request for a view says which view the tree shows, so the answer can be a delta.
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (drawnUrl && detail.target && detail.target.id === "view") {
      detail.headers["X-Mmu-Drawn"] = drawnUrl;
    }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "view") busy = true;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail && event.detail.failed) { busy = false; pendingStep = null; loadingStep = null; }
  });
  document.addEventListener("htmx:responseError", function () { setPlaying(false); });
  // A bad value in the scenario form comes back as the form alone (HX-Retarget), with the
  // message next to the field: move the focus there.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "scenario-form") return;
    var form = $("scenario-form");
    var bad = form && form.querySelector('[aria-invalid="true"]');
    if (bad) bad.focus();
  });
  document.addEventListener("DOMContentLoaded", afterSettle);
})();
