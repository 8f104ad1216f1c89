// Navigation keys and the shortcut help. Every target is a server-rendered link or button
// in #view (markers, next / previous of each kind, walkthrough stops), so a key only clicks
// it: the URL, history and htmx swap are the same as for a click.
// With "skip the steps that change nothing" ticked, the arrow keys go through the Prev /
// Next buttons, whose URLs skip those steps; presses made while a step loads are queued.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  var KEYS = {
    n: "next-leak", N: "prev-leak", o: "next-orphan", O: "prev-orphan",
    f: "next-flood", F: "prev-flood", t: "next-teardown", T: "prev-teardown",
    b: "next-boot", B: "prev-boot", d: "jump-diff",
  };

  var busy = false;
  var queued = 0;  // arrow presses not yet sent: > 0 forward, < 0 backward

  // Keys go to the control itself in a text field, a select or the slider; a checkbox or
  // a button has no use for letters or arrows, so the shortcuts still work there (after
  // ticking "skip", say).
  var OWN_KEYS = { checkbox: false, radio: false, button: false, submit: false, reset: false };
  function typing(target) {
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input") return OWN_KEYS[(target.type || "text").toLowerCase()] !== false;
    return tag === "textarea" || tag === "select" || !!(target && target.isContentEditable);
  }

  function skipping() {
    var box = $("skip-quiet");
    return !!(box && box.checked);
  }

  function step(direction) {
    var button = $(direction > 0 ? "btn-next" : "btn-prev");
    if (!button || button.disabled) { queued = 0; return; }
    var play = $("btn-play");
    if (play && play.getAttribute("aria-pressed") === "true") play.click();  // pause
    button.click();
  }

  function drain() {
    if (busy || !queued) return;
    var direction = queued > 0 ? 1 : -1;
    queued -= direction;
    step(direction);
  }

  function openHelp() {
    var dialog = $("help-dialog");
    if (!dialog || dialog.open) return;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    var close = $("help-close");
    if (close) close.focus();
  }

  function follow(id) {
    var link = $(id);
    if (link) link.click();
  }

  // Capture phase on window: runs before app.js's document listener, which it replaces
  // for the arrows only while skipping.
  window.addEventListener("keydown", function (event) {
    var dialog = $("help-dialog");
    if (dialog && dialog.open) {
      // Modal: nothing behind it moves; Esc (the dialog's own default action) closes it.
      if (event.key !== "Escape" && event.key !== "Tab") event.stopImmediatePropagation();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    var key = event.key;
    if ((key === "ArrowLeft" || key === "ArrowRight") && skipping()) {
      event.preventDefault();
      event.stopImmediatePropagation();
      queued += key === "ArrowRight" ? 1 : -1;
      drain();
      return;
    }
    if (key === "?") { event.preventDefault(); openHelp(); return; }
    if (key === "/") {
      var find = $("find");
      if (find) { event.preventDefault(); find.focus(); find.select(); }
      return;
    }
    // [ and ] select pages (app.js); s / S walk the walkthrough's stops.
    if (key === "s") { event.preventDefault(); follow($("tour-next") ? "tour-next" : "tour-start"); return; }
    if (key === "S") { event.preventDefault(); follow("tour-prev"); return; }
    if (Object.prototype.hasOwnProperty.call(KEYS, key)) {
      event.preventDefault();
      follow(KEYS[key]);
    }
  }, true);

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (target && target.id === "btn-help") { event.preventDefault(); openHelp(); }
  });

  function isView(event) {
    var target = event.detail && event.detail.target;
    return !!(target && target.id === "view");
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isView(event)) busy = true;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (isView(event) && event.detail.failed) { busy = false; queued = 0; }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    // Once per view: another part of the page (the per-boot chart) settles too.
    if (!event.target || event.target.id !== "view") return;
    busy = false;
    drain();
  });
})();
