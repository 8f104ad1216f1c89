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
  var speedMs = Number(sessionStorage.getItem("mmu-speed") || 700);

  function $(id) { return document.getElementById(id); }

  function renderFigures() {
    var scripts = document.querySelectorAll('script[type="application/json"][data-figure-for]');
    scripts.forEach(function (script) {
      var div = $(script.dataset.figureFor);
      if (!div || !window.Plotly) return;
      var fig = JSON.parse(script.textContent);
      var config = Object.assign({}, PLOT_CONFIG, {
        toImageButtonOptions: { filename: imageName() },
      });
      Plotly.react(div, fig.data, fig.layout, config).then(function () {
        if (div.id === "tree" && !div.dataset.clickBound) {
          div.dataset.clickBound = "1";
          div.on("plotly_click", onTreeClick);
        }
        Plotly.Plots.resize(div);
      });
    });
  }

  function imageName() {
    var panel = $("tree-panel");
    var step = panel ? panel.dataset.step : "0";
    var grain = panel ? panel.dataset.grain : "action";
    return "shadow-tree-" + grain + "-step-" + step;
  }

  function onTreeClick(event) {
    if (!event || !event.points || !event.points.length) return;
    var point = event.points[0];
    var data = point.customdata;
    if (!Array.isArray(data)) return;
    var id = Number(data[0]);
    if (!(id >= 0)) {
      // A summary node: select the parent the folded pages hang under (if any).
      if (data[3] === null || data[3] === undefined) return;
      id = Number(data[3]);
      if (!(id >= 0)) return;
    }
    var panel = $("tree-panel");
    if (!panel) return;
    htmx.ajax("GET", panel.dataset.selectUrl + id, {
      source: panel, target: "#view", swap: "outerHTML",
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
  // a pile of requests: presses made while a step is loading move the target, and the
  // view catches up once that step has been drawn.
  var busy = false;
  var pendingStep = null;

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
    htmx.ajax("GET", info.url + "&step=" + target, {
      source: $("tree-panel"), target: "#view", swap: "outerHTML",
    });
  }

  function onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var t = event.target;
    var tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) return;
    if (event.key === " " || event.key === "Spacebar") {
      if (tag === "button" || tag === "a") return;  // the focused control handles Space
      if (!$("btn-play")) return;
      event.preventDefault();
      togglePlay();
      return;
    }
    var info = stepInfo();
    if (!info) return;
    var base = pendingStep !== null ? pendingStep : info.step;
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

  function exportImage(format) {
    var div = $("tree");
    if (!div || !window.Plotly) return;
    Plotly.downloadImage(div, {
      format: format, filename: imageName(),
      width: div.clientWidth || 1200, height: div.clientHeight || 500,
    });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (!target) return;
    if (target.id === "btn-play") { event.preventDefault(); togglePlay(); }
    else if (target.id === "copy-link") { event.preventDefault(); copyLink(target); }
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
      sessionStorage.setItem("mmu-speed", String(speedMs));
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
    busy = false;
    renderFigures();
    restoreControls();
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

  document.addEventListener("keydown", onKey);
  document.addEventListener("htmx:afterSettle", afterSettle);
  document.addEventListener("htmx:historyRestore", afterSettle);
  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "view") busy = true;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail && event.detail.failed) { busy = false; pendingStep = null; }
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
