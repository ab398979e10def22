// The step-through timeline of a distsim run report (see timeline.rs). No library, no network:
// the data is the JSON in #tl-data; the state at a step is replayed from its snapshot.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var D = JSON.parse($("tl-data").textContent);
  var E = D.events, n = E.length, N = D.names.length;
  var KIND = ["start", "send", "deliver", "drop_cut", "drop_loss", "drop_down", "duplicate",
    "timer", "invoke", "complete", "fault", "note", "violation", "truncated"];
  var effects = {};
  D.effects.forEach(function (x) { effects[x[0]] = x; });
  var violation = -1;
  for (var vi = 0; vi < n; vi++) { if (E[vi][1] === 12) { violation = vi; break; } }
  // A violation judged after the run (a metric assertion) has no event: its anchor stands in.
  if (violation < 0 && D.anchor_is_violation) { violation = D.anchor - D.first; }
  var svg = $("spacetime-svg"), geom = null, mark = null;
  if (svg && svg.hasAttribute("data-t0-ns")) {
    geom = {
      t0: +svg.getAttribute("data-t0-ns"), t1: +svg.getAttribute("data-t1-ns"),
      x0: +svg.getAttribute("data-x0-px"), x1: +svg.getAttribute("data-x1-px"),
      lanes: svg.getAttribute("data-lanes-px").split(",").map(Number)
    };
  }
  var step = 0;

  function thousands(k) { return String(k).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function secs(ns) { return (ns / 1e9).toFixed(6) + " s"; }
  function name(k) { return D.names[k] !== undefined ? D.names[k] : "n" + k; }
  function text(el, s) { el.textContent = s; }
  function cell(tr, s, cls) {
    var td = document.createElement("td");
    td.textContent = s === undefined || s === null ? "" : String(s);
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }

  // The state after events 0..i of the window: statuses, open operations, summaries,
  // messages in flight; and, for event i, the message it ends (for the diagram's mark).
  function stateAt(i) {
    var st = {
      status: D.init.status.slice(), ops: D.init.ops.slice(), sum: D.init.summary.slice(),
      flight: new Map(), more: D.init.flight_more, msg: null, touched: {}
    };
    D.init.flight.forEach(function (f) {
      st.flight.set(f[0], { t: f[1], from: f[2], to: f[3], label: f[4], copies: f[5] });
    });
    var S = D.summaries, si = 0;
    for (var j = 0; j <= i; j++) {
      var e = E[j], abs = D.first + j, node = e[2], f;
      switch (e[1]) {
        case 0: st.status[node] = "up"; break;
        case 1:
          st.flight.set(e[5], { t: e[0], from: node, to: e[3], label: D.labels[e[4]], copies: 1 });
          break;
        case 6: f = st.flight.get(e[5]); if (f) { f.copies += 1; } break;
        case 2: case 3: case 4: case 5:
          f = st.flight.get(e[5]);
          if (f) {
            if (j === i) { st.msg = f; }
            f.copies -= 1;
            if (f.copies <= 0) { st.flight.delete(e[5]); }
          } else if (st.more > 0) { st.more -= 1; }
          break;
        case 8: st.ops[node] = [D.labels[e[4]], e[0]]; break;
        case 9: st.ops[node] = null; break;
        case 10:
          f = effects[abs];
          if (f) {
            f[2].forEach(function (m) {
              if (j === i) { st.touched[m] = true; }
              if (f[1] === "crash") { st.status[m] = "crashed"; st.sum[m] = null; }
              else if (f[1] === "pause") { st.status[m] = "paused"; }
              else if (st.status[m] === "paused") { st.status[m] = "up"; }
            });
            // Messages held at a node paused, then crashed: lost with no event of their own.
            (f[3] || []).forEach(function (id) {
              var g = st.flight.get(id);
              if (g) {
                g.copies -= 1;
                if (g.copies <= 0) { st.flight.delete(id); }
              } else if (st.more > 0) { st.more -= 1; }
            });
          }
          break;
        default: break;
      }
      while (si < S.length && S[si][0] <= abs) {
        if (S[si][0] === abs && j === i) { st.touched[S[si][1]] = true; }
        st.sum[S[si][1]] = S[si][2];
        si += 1;
      }
    }
    return st;
  }

  function describe(e, st, abs) {
    var who = name(e[2]), peer = e[3] >= 0 ? name(e[3]) : "", l = D.labels[e[4]];
    var id = e[5] >= 0 ? " (message #" + e[5] + ")" : "";
    switch (e[1]) {
      case 0: return who + (l === "restart" ? " restarts from its durable storage" : " starts");
      case 1: return who + " sends " + l + " to " + peer + id;
      case 2: return who + " receives " + l + " from " + peer + id +
        (st.msg ? ", sent at " + secs(st.msg.t) : "");
      case 3: return l + " from " + who + " to " + peer + " is dropped: the link is cut" + id;
      case 4: return l + " from " + who + " to " + peer + " is lost by the network" + id;
      case 5: return l + " from " + who + " to " + peer + " is dropped: " + peer + " is down" + id;
      case 6: return "the network duplicates " + l + " from " + who + " to " + peer + id;
      case 7: return "a timer fires at " + who + " (tag " + e[5] + ")";
      case 8: return who + " invokes " + l;
      case 9: return who + "'s operation completes: " + l;
      case 10:
        var lost = (effects[abs] || [])[3] || [];
        return "fault: " + l + (lost.length ? "; " + lost.length +
          " message(s) held while it was paused are lost" : "");
      case 11: return who + " notes: " + l;
      case 12: return "VIOLATION: " + l;
      default: return l;
    }
  }

  function drawMark(e, st) {
    if (!geom) { return ""; }
    var t = e[0];
    if (!mark) {
      mark = document.createElementNS(svg.namespaceURI, "g");
      mark.setAttribute("id", "tl-mark");
      svg.appendChild(mark);
    }
    while (mark.firstChild) { mark.removeChild(mark.firstChild); }
    var span = Math.max(geom.t1 - geom.t0, 1);
    var x = function (ns) { return geom.x0 + (ns - geom.t0) / span * (geom.x1 - geom.x0); };
    var y = function (k) { return geom.lanes[Math.min(k, geom.lanes.length - 1)]; };
    if (t < geom.t0 || t > geom.t1) {
      return " (outside the diagram's window, " + secs(geom.t0) + " to " + secs(geom.t1) + ")";
    }
    var add = function (tag, attrs) {
      var el = document.createElementNS(svg.namespaceURI, tag);
      Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
      mark.appendChild(el);
    };
    var top = Math.min.apply(null, geom.lanes), bottom = Math.max.apply(null, geom.lanes);
    add("line", { x1: x(t), x2: x(t), y1: top - 16, y2: bottom + 16, stroke: "#cc00cc",
      "stroke-width": 1.5, "stroke-dasharray": "4 3" });
    if (st.msg && st.msg.t >= geom.t0) {
      add("line", { x1: x(st.msg.t), y1: y(st.msg.from), x2: x(t), y2: y(e[2]),
        stroke: "#cc00cc", "stroke-width": 3 });
    }
    if (e[1] === 1 && e[3] >= 0) {
      add("circle", { cx: x(t), cy: y(e[3]), r: 4, fill: "#cc00cc" });
    }
    add("circle", { cx: x(t), cy: y(e[2]), r: 8, fill: "none", stroke: "#cc00cc",
      "stroke-width": 3 });
    return "";
  }

  function render() {
    var e = E[step], st = stateAt(step), t = e[0];
    text($("tl-pos"), "event " + thousands(D.first + step) + " of " + thousands(D.total) +
      " · t = " + secs(t));
    var ev = $("tl-event");
    ev.className = "tl-event" + (e[1] === 12 ? " tl-v" : "");
    var where = drawMark(e, st);
    text(ev, KIND[e[1]] + " at " + secs(t) + ": " + describe(e, st, D.first + step) + where);
    var table = $("tl-nodes");
    while (table.firstChild) { table.removeChild(table.firstChild); }
    var head = document.createElement("tr");
    ["node", "status", "role", "term", "log", "lock", "state", "open operation"].forEach(
      function (h) { var th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
    table.appendChild(head);
    for (var k = 0; k < N; k++) {
      var tr = document.createElement("tr"), s = st.sum[k] || {}, op = st.ops[k];
      if (k === e[2] || k === e[3] && e[1] === 2) { tr.className = "tl-cur"; }
      if (st.touched[k]) { tr.className += " tl-changed"; }
      cell(tr, name(k));
      cell(tr, st.status[k], "tl-" + st.status[k].replace(" ", "-"));
      cell(tr, s.role);
      cell(tr, s.term);
      cell(tr, s.log_len);
      cell(tr, s.lock);
      cell(tr, s.detail);
      cell(tr, op ? op[0] + " since " + secs(op[1]) : "");
      table.appendChild(tr);
    }
    var fl = $("tl-faults");
    while (fl.firstChild) { fl.removeChild(fl.firstChild); }
    D.faults.forEach(function (f) {
      var on = f[0] === f[1] ? f[0] === t : f[0] <= t && t < f[1];
      if (!on) { return; }
      var li = document.createElement("li");
      li.textContent = f[2] + " from " + secs(f[0]) + (f[1] > f[0] ? " to " + secs(f[1]) : "") +
        ": " + f[3];
      fl.appendChild(li);
    });
    if (!fl.firstChild) {
      var none = document.createElement("li");
      none.textContent = "none";
      fl.appendChild(none);
    }
    var msgs = Array.from(st.flight.entries());
    text($("tl-flight-count"), thousands(msgs.length + st.more) + " message(s) sent and not yet " +
      "delivered or dropped" + (msgs.length > 40 ? "; the 40 oldest:" : ""));
    var ul = $("tl-flight");
    while (ul.firstChild) { ul.removeChild(ul.firstChild); }
    msgs.slice(0, 40).forEach(function (m) {
      var li = document.createElement("li"), f = m[1];
      li.textContent = name(f.from) + " \u2192 " + name(f.to) + ": " + f.label + ", sent " +
        secs(f.t) + (f.copies > 1 ? " (" + f.copies + " copies)" : "") + " #" + m[0];
      ul.appendChild(li);
    });
    if (st.more > 0) {
      var more = document.createElement("li");
      more.textContent = "... and " + thousands(st.more) + " sent before the embedded events";
      ul.appendChild(more);
    }
  }

  function go(i) {
    step = Math.max(0, Math.min(n - 1, i));
    $("tl-slider").value = String(step);
    render();
    try { history.replaceState(null, "", "#step=" + (D.first + step)); } catch (err) { /* file: */ }
  }

  function toViolation() { go(violation >= 0 ? violation : (D.anchor !== null ? D.anchor - D.first : 0)); }

  $("tl-first").addEventListener("click", function () { go(0); });
  $("tl-prev").addEventListener("click", function () { go(step - 1); });
  $("tl-next").addEventListener("click", function () { go(step + 1); });
  $("tl-last").addEventListener("click", function () { go(n - 1); });
  $("tl-viol").addEventListener("click", toViolation);
  $("tl-viol").disabled = violation < 0;
  $("tl-slider").addEventListener("input", function () { go(+$("tl-slider").value); });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target === $("tl-slider")) { return; }
    var k = ev.key;
    if (k === "ArrowRight" || k === "n") { go(step + 1); }
    else if (k === "ArrowLeft" || k === "p") { go(step - 1); }
    else if (k === "v") { toViolation(); }
    else if (k === "Home" || k === "f") { go(0); }
    else if (k === "End" || k === "l") { go(n - 1); }
    else { return; }
    ev.preventDefault();
  });

  // #step=N (a trace event) and #keys=... (keys pressed, or > < ! to click next, prev and
  // the violation's button), so that a link, or a headless browser, opens a given view.
  function fromHash() {
    var h = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var p = kv.split("=");
      if (p.length === 2) { h[p[0]] = decodeURIComponent(p[1]); }
    });
    if (h.step !== undefined && /^\d+$/.test(h.step)) { go(+h.step - D.first); } else { toViolation(); }
    (h.keys || "").split("").forEach(function (c) {
      var button = { ">": "tl-next", "<": "tl-prev", "!": "tl-viol" }[c];
      if (button) { $(button).click(); return; }
      document.dispatchEvent(new KeyboardEvent("keydown", { key: c, bubbles: true }));
    });
    return h.step !== undefined;
  }
  window.addEventListener("hashchange", fromHash);
  // A link to a step opens at the diagram, with the timeline below it.
  if (fromHash()) {
    var anchor = $("spacetime") || $("timeline");
    anchor.scrollIntoView();
  }
}());
