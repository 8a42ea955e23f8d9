"""The report page's inline stylesheet and script (no file, no network: both go in the page).

The script lists a step's tasks when the step is clicked (from the page's `tasks-data` JSON),
opens a card (embedded in `cards-data`, or the live UI's address), and, when the page has a
`<meta name="aioflow-live">` (the live UI's run page), follows the run: the UI sends the
report's new content as a server-sent event whenever the run changes, and the script swaps it
in, keeping the step that was open.
"""

from __future__ import annotations

CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--run:#0969da;--mute:#8c959f;--line:#d0d7de}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
#report,main.ui{max-width:1180px;margin:0 auto;padding:16px 20px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 16px;
margin:0 0 14px}
h1{font-size:22px;margin:.2em 0}h2{font-size:17px;margin:.2em 0 .5em}h4{margin:.6em 0 .2em}
.scroll{overflow-x:auto}
.muted{color:#57606a}.error{color:var(--bad);font-weight:600}
.badge{font-size:12px;padding:1px 8px;border-radius:10px;color:#fff;background:var(--mute);
vertical-align:middle}
.badge.succeeded,.badge.done{background:var(--ok)}.badge.failed,.badge.killed{background:var(--bad)}
.badge.running{background:var(--run)}.badge.caught,.badge.cancelled{background:var(--warn)}
.tag{display:inline-block;background:#eaeef2;border-radius:10px;padding:0 8px;margin:0 3px 3px 0;
font-size:12px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid var(--line);padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f6f8fa}
pre,code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:6px;margin:0;
max-height:320px;overflow:auto}
.dag-node{cursor:pointer;outline:none}.dag-node rect{fill:#dafbe1;stroke:var(--ok);stroke-width:1.5}
.dag-node.failed rect{fill:#ffebe9;stroke:var(--bad);stroke-width:2.5}
.dag-node.caught rect{fill:#fff8c5;stroke:var(--warn)}
.dag-node.running rect{fill:#ddf4ff;stroke:var(--run)}
.dag-node.notrun rect{fill:#fff;stroke:var(--mute);stroke-dasharray:5 4}
.dag-node.selected rect{stroke-width:3.5}
.dag-node text{text-anchor:middle;font-size:12px}.dag-node .name{font-weight:600;font-size:13px}
.dag-edge{fill:none;stroke:#57606a;stroke-width:1.5}
.dag-edge.nottaken{stroke:#c4c9cf;stroke-dasharray:4 4}
.fanout{font-size:11px;text-anchor:middle;fill:#57606a}
marker path{fill:#57606a}
.tl-band{fill:#fff;stroke:#eaeef2}.tl-lane{cursor:pointer}.tl-label{font-size:12px}
.tl-tick{font-size:10px;fill:#57606a}.tl-grid{stroke:#eaeef2}
.tl-task{fill:var(--ok)}.tl-task.failed,.tl-task.killed{fill:var(--bad)}
.tl-task.caught,.tl-task.cancelled{fill:#d4a72c}.tl-task.running{fill:var(--run)}
.tl-bucket{fill:#4ac26b}.tl-bucket.failed{fill:var(--bad)}
#step-tasks{margin-top:8px}#step-tasks table{width:100%}
tr.failed td{background:#fff5f5}
#card-frame{width:100%;height:520px;border:1px solid var(--line);margin-top:8px}
.filters input,.filters select{margin-right:8px}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var openStep = null;
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }
  function cell(row, value) {
    var td = document.createElement("td");
    td.textContent = text(value);
    row.appendChild(td);
    return td;
  }
  function showStep(name) {
    var all = data("tasks-data");
    var box = document.getElementById("step-tasks");
    if (!all || !box || !all.steps[name]) { return; }
    openStep = name;
    document.querySelectorAll(".dag-node").forEach(function (node) {
      node.classList.toggle("selected", node.getAttribute("data-step") === name);
    });
    var step = all.steps[name];
    var limit = 500;
    box.className = "";
    box.textContent = "";
    var title = document.createElement("h3");
    title.textContent = name + ": " + step.tasks.length + " task" +
      (step.tasks.length === 1 ? "" : "s") +
      (step.tasks.length > limit ? " (the first " + limit + " listed)" : "");
    box.appendChild(title);
    if (!step.tasks.length) { return; }
    var table = document.createElement("table");
    table.id = "step-task-table";
    table.innerHTML = "<thead><tr><th>task</th><th>status</th><th>attempt</th>" +
      "<th>index</th><th>duration</th><th>" + (all.log_url ? "cards, logs" : "cards") +
      "</th></tr></thead>";
    var body = document.createElement("tbody");
    step.tasks.slice(0, limit).forEach(function (t) {
      var row = document.createElement("tr");
      row.className = "task-row " + t[1];
      cell(row, all.run + "/" + name + "/" + t[0]);
      cell(row, t[1]);
      cell(row, t[2]);
      cell(row, t[5]);
      cell(row, t[3] !== null && t[4] !== null ? (t[4] - t[3]).toFixed(3) + " s" : "");
      var cards = cell(row, "");
      var count = step.cards[String(t[0])] || 0;
      for (var n = 0; n < count; n++) {
        var a = document.createElement("a");
        a.className = "card-link";
        var path = all.run + "/" + name + "/" + t[0];
        if (all.card_url) {
          a.href = all.card_url.replace("{pathspec}", path).replace("{n}", n);
          a.target = "_blank";
        } else {
          a.href = "#";
          a.setAttribute("data-task-card", path + "#" + n);
        }
        a.textContent = "card " + (n + 1) + " ";
        cards.appendChild(a);
      }
      if (all.log_url) {
        var logs = document.createElement("a");
        logs.className = "log-link";
        logs.href = all.log_url.replace("{pathspec}", all.run + "/" + name + "/" + t[0]);
        logs.target = "_blank";
        logs.textContent = "logs";
        cards.appendChild(logs);
      }
      body.appendChild(row);
    });
    table.appendChild(body);
    box.appendChild(table);
  }
  function openCard(key) {
    var cards = data("cards-data");
    var frame = document.getElementById("card-frame");
    if (!cards || !frame || !cards.pages[key]) { return; }
    var page = cards.pages[key];
    // The chart libraries travel once in the report, not in each card's page.
    if (cards.charts) { page = page.split(cards.placeholder).join(cards.charts); }
    frame.hidden = false;
    frame.srcdoc = page;
    frame.scrollIntoView();
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a.card-link");
    if (link && (link.hasAttribute("data-card") || link.hasAttribute("data-task-card"))) {
      event.preventDefault();
      var key = link.getAttribute("data-card");
      if (!key) {
        var cards = data("cards-data");
        key = cards ? cards.tasks[link.getAttribute("data-task-card")] : null;
      }
      if (key) { openCard(key); }
      return;
    }
    var stepped = event.target.closest("[data-step]");
    if (stepped && !event.target.closest("a[href]:not([href^='#step-'])")) {
      if (event.target.closest("a")) { event.preventDefault(); }
      showStep(stepped.getAttribute("data-step"));
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.classList &&
        event.target.classList.contains("dag-node")) {
      showStep(event.target.getAttribute("data-step"));
    }
  });
  var live = document.querySelector("meta[name='aioflow-live']");
  if (live && window.EventSource) {
    var source = new EventSource(live.getAttribute("content"));
    source.addEventListener("report", function (event) {
      var old = document.getElementById("report");
      var holder = document.createElement("div");
      holder.innerHTML = event.data;
      if (old && holder.firstElementChild) {
        old.replaceWith(holder.firstElementChild);
        if (openStep) { showStep(openStep); }
      }
    });
    source.addEventListener("end", function () { source.close(); });
  }
})();
"""
