// A step's tree redraw without Plotly: the changed traces' SVG patched in place.
//
// Plotly redraws the whole figure on any restyle (defaults, calc, axes and every trace:
// 15-30 ms however few points change), and a tree of 100k pages changes some node
// on every step. But a step moves no axis and, most often, shows no new kind of node: what
// it changes are the points, labels and links of a few traces, whose every piece Plotly has
// already drawn once. So the elements Plotly drew are learnt after each of its draws (per
// trace: a point's path by marker size, its style by colour, a label's offset by size) and
// a step made only of known pieces is drawn by setting those on the trace's own elements,
// in Plotly's order and with Plotly's pixel arithmetic (the axes' c2p): the SVG is the one
// Plotly would draw. Anything else (a size or colour not seen yet, a trace drawn for the
// first time, a link reaching further off a zoomed plot than Plotly draws it, a label Plotly
// would typeset, a hover label up) goes to Plotly.
//
// The figure's data (gd.data) is updated with the SVG; Plotly's own derived state (its
// calcdata: hover, click, zoom) is brought up to date by Plotly.redraw before any of those
// reads it: on the pointer entering, moving on or touching the plot, and after Plotly
// redraws from it by itself (a resize, a zoom).
(function () {
  "use strict";

  // Per graph div: {traces: [per trace index: {d, style, offset, point, label, line,
  //                                               group, groupData}],
  //                 layer, layerData, stale: bool, watched: bool}
  function cacheOf(div) {
    if (!div._treePatch) div._treePatch = { traces: [], stale: false, watched: false };
    return div._treePatch;
  }

  // How far off the plot Plotly draws a link, in plot sizes (scatter's maxScreensAway): a
  // link reaching further is cut there.
  var MAX_SCREENS_AWAY = 20;

  function valueAt(v, j) { return Array.isArray(v) ? v[j] : v; }

  // The <g class="trace"> Plotly drew for each trace index (invisible traces have none).
  function traceGroups(div) {
    var groups = {};
    div.querySelectorAll(".scatterlayer .trace").forEach(function (g) {
      var cd = g.__data__;
      if (cd && cd[0] && cd[0].trace) groups[cd[0].trace.index] = g;
    });
    return groups;
  }

  function children(g, selector) { return g.querySelectorAll(":scope > " + selector); }

  // What Plotly drew, learnt from its elements and the data it drew them from.
  function learn(div) {
    var cache = cacheOf(div);
    var layer = div.querySelector(".scatterlayer");
    if (layer && !cache.layer) {
      cache.layer = layer.cloneNode(false);
      cache.layerData = layer.__data__;
    }
    var groups = traceGroups(div);
    Object.keys(groups).forEach(function (key) {
      var i = Number(key), g = groups[key], t = div.data[i];
      var known = cache.traces[i] || (cache.traces[i] = { d: {}, style: {}, offset: {} });
      var n = (t.x || []).length;
      if (g.__data__.length !== n) return;  // not drawn point for point: learn nothing
      var marker = t.marker || {};
      var points = children(g, ".points > path.point");
      if (points.length === n && n > 0) {
        points.forEach(function (p, j) {
          known.d[valueAt(marker.size, j)] = p.getAttribute("d");
          known.style[valueAt(marker.color, j)] = p.getAttribute("style");
        });
        known.point = points[0].cloneNode(false);
      }
      var labels = children(g, ".text > g.textpoint");
      if (labels.length === n && n > 0) {
        // A point without a label (its text "") has a group with no <text>: the template
        // is the first with one.
        var labelled = null;
        labels.forEach(function (tp, j) {
          if (!tp.querySelector("text")) return;
          known.offset[valueAt(marker.size, j)] = tp.getAttribute("transform");
          labelled = labelled || tp;
        });
        if (labelled) known.label = labelled.cloneNode(true);
      }
      var line = g.querySelector(":scope > .lines > path.js-line");
      if (line) known.line = line.cloneNode(false);
      if (!known.group && n > 0) {
        // The trace's group as Plotly makes it, emptied: Plotly draws no group for a trace
        // without points (its plot skips a trace of length 0), so a step that fills one
        // again puts this back, with the data Plotly's next draw keys it by (the uid).
        known.group = g.cloneNode(true);
        known.group.querySelectorAll("path.point, g.textpoint, path.js-line")
          .forEach(function (e) { e.remove(); });
        known.groupData = g.__data__;
      }
    });
  }

  // Points off the plot at `at` ({x, y}, left of the x range, where no zoom Plotly offers
  // reaches), added to each marker trace of `data`: one in each marker size a node of it
  // can take that it has no point in (`at.sizes`, by trace meta: a folded node's size grows
  // with its count), or for a trace with no points and no such list, one in its default
  // size (that of `base`, the run's figure); all in its default colour; and in the links'
  // trace, if it has none, one link of no length there (Plotly draws its path, clamped
  // off the plot). Drawn so, each trace's elements are learnt by the first draw (learn),
  // and a step that first brings a kind of node, a size or a link can be patched. Returns
  // the indexes of the traces given points, for the caller to patch back to their own
  // once Plotly has drawn.
  function park(data, base, at) {
    var parked = [];
    data.forEach(function (t, i) {
      var x = t.x || [];
      if ((t.mode || "").indexOf("lines") !== -1) {  // the links: one, if none is drawn
        if (x.length) return;
        t.x = [at.x, at.x, null];
        t.y = [at.y, at.y, null];
        parked.push(i);
        return;
      }
      var m = base[i].marker || {};
      var sizes = (at.sizes || {})[t.meta] || (x.length ? [] : [m.size]);
      var had = {};
      x.forEach(function (_, j) { had[valueAt(t.marker.size, j)] = true; });
      sizes = sizes.filter(function (size) { return !had[size]; });
      if (!sizes.length) return;
      var n = x.length;
      var own = function (v) {  // the trace's per-point value v, as an array of n
        return Array.isArray(v) ? v : x.map(function () { return v; });
      };
      var each = function (v) { return sizes.map(function () { return v; }); };
      t.x = x.concat(each(at.x));
      t.y = (t.y || []).concat(each(at.y));
      // Customdata only where the trace has it (Plotly marks such points with a class).
      if ("customdata" in base[i]) t.customdata = (t.customdata || []).concat(each([]));
      t.text = own(t.text || "").slice(0, n).concat(each("0"));
      t.marker = Object.assign({}, t.marker, {
        size: own(t.marker.size).slice(0, n).concat(sizes),
        color: own(t.marker.color).slice(0, n).concat(each(m.color)),
      });
      parked.push(i);
    });
    return parked;
  }

  // Plotly's derived state is behind its data: have it draw the data it holds.
  function reconcile(div) {
    var cache = cacheOf(div);
    if (!cache.stale) return;
    cache.stale = false;
    Plotly.redraw(div);
  }

  // After every Plotly draw: learn what it drew, or, when it drew from state the patches
  // left behind (a resize or zoom redraws from calcdata), draw again from the data.
  function watch(div) {
    var cache = cacheOf(div);
    if (cache.watched) return;  // its plotly_afterplot has learnt the draw just made
    cache.watched = true;
    learn(div);  // the first draw, made before these listeners
    var after = function () { if (cache.stale) reconcile(div); else learn(div); };
    div.on("plotly_afterplot", after);
    div.on("plotly_relayout", after);
    // Capturing, on the graph div: before Plotly's own hover, click and drag handlers; a
    // move too, since a pointer resting on the plot while steps are patched is over
    // Plotly's drag layer all along (no new pointerover when it moves onto a node).
    ["pointerover", "pointermove", "pointerdown", "wheel"].forEach(function (type) {
      div.addEventListener(type, function () { reconcile(div); }, true);
    });
  }

  function hovering(div) {
    var layer = div.querySelector(".hoverlayer");
    return !!(layer && layer.childElementCount);
  }

  // Plotly typesets a label with markup or entities into <tspan>s: not patched.
  function plainLabel(text) { return typeof text === "string" && text !== "" && !/[<>&]/.test(text); }

  // The style Plotly gives a point of this trace in `colour` (a "#rrggbb"), from one it gave
  // another point of it: the fill, or the outline of an open marker (drawing.singlePointStyle
  // sets the colour as "rgb(r, g, b)"), is the only part that differs.
  function styleIn(known, colour) {
    var style = known.style[colour];
    if (style !== undefined) return style;
    var hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(colour);
    var like = known.style[Object.keys(known.style)[0]];
    if (!hex || like === undefined) return undefined;
    var rgb = "rgb(" + [1, 2, 3].map(function (k) { return parseInt(hex[k], 16); }).join(", ") + ")";
    var open = /fill: none/.test(like);
    var part = open ? /(^|; )stroke: rgb\([^)]*\)/ : /(^|; )fill: rgb\([^)]*\)/;
    if (!part.test(like)) return undefined;
    style = like.replace(part, "$1" + (open ? "stroke: " : "fill: ") + rgb);
    known.style[colour] = style;
    return style;
  }

  // The new elements of one trace (drawn in `g`), or null when a piece is not known.
  function planTrace(div, g, i, t, known) {
    var xa = div._fullLayout.xaxis, ya = div._fullLayout.yaxis;
    // The trace's own mode: Plotly gives an empty trace none (it makes it invisible).
    var mode = div.data[i].mode || div._fullData[i].mode || "";
    var plan = { points: [], labels: [], lines: [] };
    if (mode.indexOf("lines") !== -1) {
      if (!known.line || !g.querySelector(":scope > .lines")) return null;
      // Plotly draws a path per gap-separated run of points: here each link is one, drawn
      // as Plotly draws it while both ends are within its reach (a zoomed plot's links
      // reach further: Plotly cuts them there).
      var reach = [-MAX_SCREENS_AWAY * xa._length, (1 + MAX_SCREENS_AWAY) * xa._length,
                   -MAX_SCREENS_AWAY * ya._length, (1 + MAX_SCREENS_AWAY) * ya._length];
      for (var k = 0; k + 1 < t.x.length; k += 3) {
        var x0 = xa.c2p(t.x[k]), y0 = ya.c2p(t.y[k]);
        var x1 = xa.c2p(t.x[k + 1]), y1 = ya.c2p(t.y[k + 1]);
        if (Math.min(x0, x1) < reach[0] || Math.max(x0, x1) > reach[1] ||
            Math.min(y0, y1) < reach[2] || Math.max(y0, y1) > reach[3]) return null;
        plan.lines.push("M" + x0 + "," + y0 + "L" + x1 + "," + y1);
      }
    }
    if (mode.indexOf("markers") !== -1) {
      if (!known.point || !g.querySelector(":scope > .points")) return null;
      for (var j = 0; j < t.x.length; j++) {
        var size = valueAt(t.marker.size, j), colour = valueAt(t.marker.color, j);
        var d = known.d[size], style = styleIn(known, colour);
        if (d === undefined || style === undefined) return null;
        plan.points.push(["translate(" + xa.c2p(t.x[j]) + "," + ya.c2p(t.y[j]) + ")", d, style]);
      }
    }
    if (mode.indexOf("text") !== -1 && t.text.every(function (s) { return s === ""; }) &&
        !g.querySelector(":scope > .text text")) {
      plan.labels = null;  // no label drawn nor to draw (leak groups past so many boots)
    } else if (mode.indexOf("text") !== -1) {
      if (!known.label || !g.querySelector(":scope > .text")) return null;
      for (var m = 0; m < t.x.length; m++) {
        // No label (a leak group's count left out): Plotly keeps the point's group and
        // removes its <text>.
        if (t.text[m] === "") { plan.labels.push(null); continue; }
        var offset = known.offset[valueAt(t.marker.size, m)];
        if (offset === undefined || !plainLabel(t.text[m])) return null;
        plan.labels.push([offset, xa.c2p(t.x[m]), ya.c2p(t.y[m]), t.text[m]]);
      }
    }
    return plan;
  }

  // Make `parent`'s children `count` clones of `template` (reusing those there), in order.
  function fit(parent, selector, template, count) {
    var have = children(parent, selector);
    for (var j = have.length - 1; j >= count; j--) parent.removeChild(have[j]);
    for (var k = have.length; k < count; k++) parent.appendChild(template.cloneNode(true));
    return children(parent, selector);
  }

  function drawPlan(g, known, plan) {
    if (known.line) {  // a lines trace (planTrace needs its template)
      fit(g.querySelector(":scope > .lines"), "path.js-line", known.line, plan.lines.length)
        .forEach(function (p, k) { p.setAttribute("d", plan.lines[k]); });
    }
    var points = g.querySelector(":scope > .points");
    if (points && known.point) {
      fit(points, "path.point", known.point, plan.points.length).forEach(function (p, j) {
        var at = plan.points[j];
        p.setAttribute("transform", at[0]);
        p.setAttribute("d", at[1]);
        p.setAttribute("style", at[2]);
      });
    }
    var text = g.querySelector(":scope > .text");
    if (text && known.label && plan.labels) {
      fit(text, "g.textpoint", known.label, plan.labels.length).forEach(function (tp, m) {
        var at = plan.labels[m], label = tp.querySelector("text");
        if (!at) {
          if (label) tp.removeChild(label);
          return;
        }
        if (!label) label = tp.appendChild(known.label.querySelector("text").cloneNode(true));
        tp.setAttribute("transform", at[0]);
        label.setAttribute("x", at[1]);
        label.setAttribute("y", at[2]);
        label.setAttribute("data-unformatted", at[3]);
        label.textContent = at[3];
      });
    }
  }

  // Draw a step's change of the traces `changed` (new arrays in `traces`, the last drawn in
  // `sent`) by patching Plotly's SVG, if every piece of it is known, zoomed or not (a
  // patch computes pixels with Plotly's own axes).
  // Returns whether it did; when not, nothing was touched.
  function patch(div, changed, traces, sent) {
    var cache = cacheOf(div);
    if (!div._fullLayout || !div._fullData || hovering(div)) return false;
    var groups = traceGroups(div);
    var plans = [];
    for (var c = 0; c < changed.length; c++) {
      var i = changed[c], t = traces[i], s = sent[i];
      // A trace drawn for the first time (it was invisible: Plotly has drawn none of it),
      // or no longer drawn: Plotly makes or drops its elements.
      if (!s || s.visible !== t.visible) return false;
      if (div.data[i].visible === "legendonly") { plans.push([i, null]); continue; }
      var known = cache.traces[i];
      if (!known || !(groups[i] || known.group)) return false;
      var plan = planTrace(div, groups[i] || known.group, i, t, known);
      if (!plan) return false;
      plans.push([i, plan]);
    }
    var layer = div.querySelector(".scatterlayer") || restoreLayer(div, cache);
    if (!layer) return false;
    plans.forEach(function (entry) {
      var i = entry[0], t = traces[i], data = div.data[i];
      var plan = entry[1];
      if (plan && !groups[i]) {
        // No group: nothing of it is drawn; one is put back only if the step draws in it.
        if (!plan.points.length && !plan.lines.length && !(plan.labels || []).length) plan = null;
        else groups[i] = insertGroup(layer, groups, i, cache.traces[i]);
      }
      if (plan) drawPlan(groups[i], cache.traces[i], plan);
      data.x = t.x; data.y = t.y; data.customdata = t.customdata; data.text = t.text;
      data.marker = Object.assign({}, data.marker, { size: t.marker.size, color: t.marker.color });
    });
    cache.stale = true;
    return true;
  }

  // Plotly drops its scatter layer when it draws no point at all (an empty tree): the learnt
  // one goes back in the subplot, as a trace's group does, with the data Plotly's next draw
  // keys it by (its class name); the last of Plotly's trace layers, and the only one this
  // plot has. Null if none was learnt.
  function restoreLayer(div, cache) {
    var xy = div._fullLayout._plots && div._fullLayout._plots.xy;
    if (!cache.layer || !xy || !xy.plot) return null;
    var layer = cache.layer.cloneNode(false);
    layer.__data__ = cache.layerData;
    xy.plot.node().appendChild(layer);
    return layer;
  }

  // A trace's group back in the layer, where Plotly orders it (by trace index).
  function insertGroup(layer, groups, i, known) {
    var g = known.group.cloneNode(true);
    g.__data__ = known.groupData;
    var after = Object.keys(groups).map(Number).filter(function (k) { return k > i; });
    var next = after.length ? groups[Math.min.apply(null, after)] : null;
    layer.insertBefore(g, next);
    return g;
  }

  // Plotly is about to draw from the data (a restyle of the data, a new figure): its
  // derived state will be current without a reconcile.
  function redrawing(div) { cacheOf(div).stale = false; }

  window.TreePatch = { patch: patch, watch: watch, redrawing: redrawing, park: park };
})();
