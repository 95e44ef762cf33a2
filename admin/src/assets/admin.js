// cog admin: local times (UTC on hover), confirmations, JSON argument checks, live run updates.
(function () {
  "use strict";

  var timeFormat = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });
  var yearFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit"
  });

  // <time datetime="..."> shows UTC in the markup; show the viewer's local time, keep UTC on hover.
  function localizeTimes(root) {
    var now = new Date();
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.localized) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.title = "UTC: " + d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "");
      el.textContent = (d.getFullYear() === now.getFullYear() ? timeFormat : yearFormat).format(d);
      el.dataset.localized = "1";
    });
  }

  // Forms with data-confirm ask first.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
      return;
    }
    // Launch arguments must be a JSON object: checked here, and again on the server.
    var area = form.querySelector && form.querySelector("textarea[data-json]");
    if (area) {
      var message = form.querySelector(".field-error");
      var text = area.value.trim();
      var problem = null;
      if (text !== "") {
        try {
          var v = JSON.parse(text);
          if (v === null || typeof v !== "object" || Array.isArray(v)) problem = "Arguments must be a JSON object, such as {\"date\": \"2026-11-24\"}.";
        } catch (e) {
          problem = "Arguments are not valid JSON: " + e.message;
        }
      }
      if (problem) {
        ev.preventDefault();
        if (message) message.textContent = problem;
        var details = form.querySelector("details");
        if (details) details.open = true;
        area.focus();
      } else if (message) {
        message.textContent = "";
      }
    }
  }, true);

  // A run page polls its JSON every second while the run is active and swaps in the fresh
  // server-rendered part whenever anything changed.
  function watchRun(live) {
    var api = live.dataset.api, fragment = live.dataset.fragment, last = null, busy = false;
    function signature(run) {
      return JSON.stringify([run.status, run.completed_at,
        run.stages.map(function (s) { return [s.status, s.completed_at]; }),
        run.task_runs.map(function (t) { return [t.id, t.status, t.attempt, t.completed_at]; }),
        run.errors.length]);
    }
    function tick() {
      if (busy) return;
      busy = true;
      fetch(api, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (run) {
          var sig = signature(run);
          var terminal = ["completed", "failed", "canceled"].indexOf(run.status) >= 0;
          var refresh = last !== null && sig !== last;
          last = sig;
          var done = function () { busy = false; if (terminal) { clearInterval(timer); live.dataset.active = "false"; } };
          if (!refresh && !(terminal && live.dataset.active === "true")) { done(); return; }
          return fetch(fragment, { credentials: "same-origin" })
            .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
            .then(function (html) { live.innerHTML = html; localizeTimes(live); done(); });
        })
        .catch(function () { busy = false; });
    }
    var timer = setInterval(tick, 1000);
    tick();
  }

  // Pages marked data-auto-refresh="N" fetch their content again every N seconds, unless
  // the tab is hidden or the viewer is typing or has something open in it.
  function autoRefresh(main) {
    var seconds = parseInt(main.dataset.autoRefresh, 10);
    if (!(seconds > 0)) return;
    setInterval(function () {
      if (document.hidden) return;
      var active = document.activeElement;
      if (active && active !== document.body && main.contains(active)) return;
      if (main.querySelector("details[open]")) return;
      fetch(window.location.href, { headers: { "X-Cog-Fragment": "main" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
        .then(function (html) { main.innerHTML = html; localizeTimes(main); })
        .catch(function () {});
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    var main = document.querySelector("main[data-auto-refresh]");
    if (main) autoRefresh(main);
    var live = document.querySelector("[data-live-run]");
    if (live && live.dataset.active === "true") watchRun(live);
  });
})();
