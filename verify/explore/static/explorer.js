// tfconstruct explorer: lays out the page data (the JSON in #lesson) and hands the charts to plotly.
// State: the view is one sublayer (stream before -> after it) or one whole step (before its first -> after its last).
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("lesson").textContent);
  const L = D.sublayers.length;
  const state = { whole: false, index: 0, head: {}, query: 0, width: D.width ? Math.max(0, D.width.rows.findIndex((r) => r.width === D.width.own)) : 0 };
  const blockByName = Object.fromEntries(D.blocks.map((b) => [b.name, b]));

  // ---------- helpers
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  };
  const fmt = (v) => (v === null || v === undefined ? "" : Math.abs(v) < 1e-9 ? "0" : String(Number(v.toPrecision(4))));
  const fmtVec = (vs) => (vs.length === 1 ? fmt(vs[0]) : "(" + vs.map(fmt).join(", ") + ")");
  const sci = (v) => (v === null || v === undefined ? "n/a" : v === 0 ? "0" : v.toExponential(2));
  const read = (pos, token, name) => {
    const b = blockByName[name];
    return D.streams[pos][token].slice(b.start, b.start + b.size);
  };
  const range = (n) => Array.from({ length: n }, (_, i) => i);
  const plot = (node, traces, layout) => {
    const full = Object.assign({ margin: { l: 60, r: 20, t: 36, b: 48 }, height: 300 }, layout);
    node.style.height = full.height + "px";  // a responsive chart takes its box's height on a resize: give it one
    if (full.width) node.style.width = full.width + "px";
    return Plotly.react(node, traces, full, { displayModeBar: false, responsive: true, staticPlot: false });
  };

  function view() {
    if (!state.whole) return { first: state.index, last: state.index, name: D.sublayers[state.index].hook };
    const s = D.steps[state.index];
    return { first: s.first, last: s.last, name: s.name };
  }
  const count = () => (state.whole ? D.steps.length : L);

  // ---------- page skeleton
  const slider = el("input", { id: "slider", type: "range", min: "0", value: "0", step: "1", "aria-label": "position" });
  const wholeBox = el("input", { id: "whole", type: "checkbox" });
  document.body.append(
    el("header", {},
      el("h1", { text: D.title }),
      el("div", { class: "controls" },
        el("button", { id: "prev", text: "◀ previous", onclick: () => move(-1) }),
        slider,
        el("button", { id: "next", text: "next ▶", onclick: () => move(1) }),
        el("label", {}, wholeBox, " whole steps (key W)"),
      ),
      el("div", { id: "position" }),
      el("p", { class: "hint", text: "← / → step through the forward pass. Tokens are rows; blocks are the named subspaces of the residual stream." }),
    ),
    el("main", {},
      el("aside", {}, el("h2", { text: "Algorithm" }), el("ol", { id: "pseudocode" }), el("h2", { text: "Timeline" }), el("div", { id: "timeline" })),
      el("div", { id: "content" },
        el("section", {}, el("h2", { text: "Residual stream" }), el("div", { id: "legend" }), el("div", { id: "stream" })),
        el("section", {}, el("h2", { text: "What the sublayer computes" }), el("div", { id: "sublayer" })),
        el("section", { id: "reference-section" }, el("h2", { text: "Reference algorithm" }), el("div", { id: "checkpoints" })),
        D.geometry ? el("section", {}, el("h2", { text: "Geometry (d = 2)" }), el("div", { id: "geometry", class: "chart" })) : null,
        D.width ? el("section", {}, el("h2", { text: "Error against the width M" }), el("div", { id: "width" })) : null,
      ),
    ),
  );
  wholeBox.addEventListener("change", () => { setWhole(wholeBox.checked); });
  slider.addEventListener("input", () => { state.index = Number(slider.value); render(); });
  document.addEventListener("keydown", (event) => {
    if (event.target && event.target.tagName === "SELECT") return;
    if (event.key === "ArrowRight") { move(1); event.preventDefault(); }
    else if (event.key === "ArrowLeft") { move(-1); event.preventDefault(); }
    else if (event.key === "w" || event.key === "W") setWhole(!state.whole);
  });

  function move(delta) {
    state.index = Math.max(0, Math.min(count() - 1, state.index + delta));
    render();
  }
  function setWhole(whole) {
    const sub = view().first;
    state.whole = whole;
    wholeBox.checked = whole;
    state.index = whole ? D.steps.findIndex((s) => s.first <= sub && sub <= s.last) : sub;
    render();
  }

  // ---------- static parts
  const legend = document.getElementById("legend");
  for (const role of ["input", "state", "scratch", "result"]) legend.append(el("span", { class: "role " + role, text: role }));
  legend.append(el("span", { class: "written", text: "written here: before → after" }), el("span", { class: "stale", text: "stale: not read again before it is overwritten" }));
  D.pseudocode.forEach((line, i) => document.getElementById("pseudocode").append(el("li", { id: "line" + i, text: line })));
  const timeline = document.getElementById("timeline");
  D.steps.forEach((s, i) => {
    const chips = range(s.last - s.first + 1).map((k) =>
      el("button", { class: "phase", id: "phase" + (s.first + k), text: D.sublayers[s.first + k].phase,
        onclick: () => { state.whole = false; wholeBox.checked = false; state.index = s.first + k; render(); } }));
    timeline.append(el("div", { class: "step", id: "step" + i }, el("span", { class: "stepname", text: s.name }), ...chips));
  });

  // ---------- the stream
  function renderStream(v) {
    const from = v.first, to = v.last + 1;
    const written = new Set(D.sublayers.slice(v.first, v.last + 1).flatMap((s) => s.writes));
    const readHere = new Set(D.sublayers.slice(v.first, v.last + 1).flatMap((s) => s.reads));
    const status = D.status[to];
    const perToken = D.blocks.filter((b) => !b.broadcast), shared = D.blocks.filter((b) => b.broadcast);
    const header = (b) => el("th", { class: "role " + (b.role || "none") + (written.has(b.name) ? " written" : "") + (readHere.has(b.name) ? " read" : ""),
      title: (b.role || "no role given") + (readHere.has(b.name) ? ", read here" : "") + (written.has(b.name) ? ", written here" : ""), text: b.name });
    const cell = (b, token) => {
      const before = read(from, token, b.name), after = read(to, token, b.name);
      const isWritten = written.has(b.name);
      const changed = isWritten && before.some((x, i) => Math.abs(x - after[i]) > 0);
      const td = el("td", { class: "cell" + (isWritten ? " written" : "") + (status[b.name] === "stale" ? " stale" : ""),
        "data-block": b.name, "data-token": String(token), "data-value": JSON.stringify(after), "data-before": JSON.stringify(before) });
      td.textContent = changed ? fmtVec(before) + " → " + fmtVec(after) : fmtVec(after);
      return td;
    };
    const tokens = el("table", { id: "tokens" }, el("tr", {}, el("th", { text: "token" }), ...perToken.map(header)));
    for (let t = 0; t < D.tokens; t++) tokens.append(el("tr", {}, el("th", { text: String(t) }), ...perToken.map((b) => cell(b, t))));
    const box = document.getElementById("stream");
    box.replaceChildren(el("div", { class: "scroll" }, tokens));
    if (shared.length) {
      const spread = (b) => {
        let worst = 0;
        for (let t = 1; t < D.tokens; t++) read(to, t, b.name).forEach((x, i) => { worst = Math.max(worst, Math.abs(x - read(to, 0, b.name)[i])); });
        return worst;
      };
      const row = el("tr", {}, el("th", { text: "every token" }), ...shared.map((b) => cell(b, 0)));
      const spreads = el("tr", { class: "spread" }, el("th", { text: "spread" }), ...shared.map((b) => el("td", { text: sci(spread(b)) })));
      box.append(el("h3", { text: "Broadcast blocks (the same in every token; one row, with the largest difference between tokens)" }),
        el("div", { class: "scroll" }, el("table", { id: "broadcast" }, el("tr", {}, el("th", {}), ...shared.map(header)), row, spreads)));
    }
  }

  // ---------- attention
  function heatmap(node, z, x, y, title, extra = {}) {
    const scale = extra.sequential ? { colorscale: "Blues", reversescale: true, zmin: 0 } : { colorscale: "RdBu", reversescale: true, zmid: 0 };
    const traces = [{ type: "heatmap", z, x, y, ...scale, hoverongaps: false,
      texttemplate: z.length * (z[0] || []).length <= 64 ? "%{z:.3g}" : "", colorbar: { thickness: 10 } }];
    plot(node, traces.concat(extra.traces || []), Object.assign({ title: { text: title, font: { size: 13 } },
      xaxis: { title: { text: extra.xtitle || "" }, type: extra.numeric ? "linear" : "category", dtick: extra.numeric ? 1 : undefined },
      yaxis: { title: { text: extra.ytitle || "" }, autorange: "reversed", type: extra.numeric ? "linear" : "category", dtick: extra.numeric ? 1 : undefined }, height: 280, width: 340 }, extra.layout || {}));
  }

  function maskHatch(keys, n) {
    return keys.map((ok, j) => (ok ? null : { type: "scatter", mode: "lines", x: [j - 0.5, j + 0.5, j + 0.5, j - 0.5, j - 0.5], y: [-0.5, -0.5, n - 0.5, n - 0.5, -0.5],
      fill: "toself", fillpattern: { shape: "/", fgcolor: "#888" }, line: { width: 0 }, hoverinfo: "skip", showlegend: false })).filter(Boolean);
  }

  function renderHead(box, sub, head) {
    const n = D.tokens, toks = range(n);
    box.append(el("pre", { text: head.describe }));
    const row = el("div", { class: "charts" });
    box.append(row);
    const scores = el("div", { class: "chart small" }), pattern = el("div", { class: "chart small" }), terms = el("div", { class: "chart small" });
    const termsBox = el("div", {});
    row.append(scores, pattern, termsBox);
    const masked = (rows) => rows.map((r) => r.map((x, j) => (head.keys[j] ? x : null)));
    heatmap(scores, masked(head.scores), toks, toks, "scores s_ij = h_iᵀ W_QK h_j", { xtitle: "key token j (hatched: masked)", ytitle: "query token i", numeric: true, traces: maskHatch(head.keys, n) });
    const z = masked(head.pattern);
    const rule = head.scoring === "softmax" ? "softmax over keys" : head.scoring === "relu" ? (head.normalise ? "ReLU(s)/N" : "ReLU(s)") : (head.normalise ? "s/N" : "s");
    heatmap(pattern, z, toks, toks, "pattern A_ij (" + rule + ")", { xtitle: "key token j (hatched: masked)", ytitle: "query token i", numeric: true, sequential: head.scoring !== "linear", traces: maskHatch(head.keys, n) });
    const ref = D.checkpoints.find((c) => c.hook === sub.hook && c.head === head.label);
    if (ref) {
      const refNode = el("div", { class: "chart small", id: "reference-pattern" });
      row.append(refNode);
      heatmap(refNode, masked(ref.expected), toks, ref.tokens || toks, "reference pattern (numpy; see below)", { xtitle: "key token j (hatched: masked)", ytitle: "query token i", numeric: true, sequential: true, traces: maskHatch(head.keys, (ref.tokens || toks).length) });
    }
    const sums = head.row_sums;
    const lo = Math.min(...sums), hi = Math.max(...sums);
    if (head.scoring !== "softmax" && (Math.abs(lo - 1) > 1e-9 || Math.abs(hi - 1) > 1e-9)) {
      const total = fmt(lo) === fmt(hi) ? fmt(lo) : "between " + fmt(lo) + " and " + fmt(hi);
      box.append(el("p", { class: "note", id: "rowsum-note", text: `Rows of A sum to ${total}, not 1: with ${rule} scoring A is a weighting, not a distribution.` }));
    }
    // each score split into its block terms, for one query token
    const select = el("select", { id: "query", onchange: () => { state.query = Number(select.value); render(); } }, ...toks.map((t) => el("option", { value: String(t), text: "query token " + t })));
    select.value = String(Math.min(state.query, n - 1));
    const q = Number(select.value);
    const traces = head.terms.map((t) => ({ type: "bar", name: t.label, x: toks.map(String), y: t.z[q].map((x, j) => (head.keys[j] ? x : null)) }));
    termsBox.append(select, terms);
    plot(terms, traces, { barmode: "relative", title: { text: "s_" + q + "j split into block terms", font: { size: 13 } }, xaxis: { title: { text: "key token j (masked keys left out)" }, type: "category" }, height: 320, width: 340, margin: { l: 50, r: 10, t: 36, b: 110 }, legend: { orientation: "h", y: -0.45 } });
    // values and output
    const table = el("table", { class: "values" }, el("tr", {}, el("th", { text: "token" }),
      ...head.written.map((c) => el("th", { text: "W_OV h_j → " + c })), ...head.written.map((c) => el("th", { text: "Σ_j A_ij W_OV h_j → " + c }))));
    for (let t = 0; t < n; t++) table.append(el("tr", {}, el("th", { text: String(t) }), ...head.values[t].map((x) => el("td", { text: fmt(x) })), ...head.output[t].map((x) => el("td", { class: "output", "data-token": String(t), text: fmt(x) }))));
    box.append(el("h4", { text: "Values and output (token i receives Σ_j A_ij W_OV h_j)" }), el("div", { class: "scroll" }, table));
    box.append(weights("W_QK (rows: query side h_i, columns: key side h_j; residual coordinates)", head.qk), weights("W_OV (rows: read from h_j, columns: written to token i)", head.ov));
  }

  function weights(title, pieces) {
    const details = el("details", { class: "weights" }, el("summary", { text: title + ": " + pieces.length + " non-zero block" + (pieces.length === 1 ? "" : "s") + ", each on its own colour scale" }));
    details.addEventListener("toggle", () => {
      if (!details.open || details.dataset.drawn) return;
      details.dataset.drawn = "1";
      const row = el("div", { class: "charts" });
      details.append(row);
      for (const p of pieces) {
        const node = el("div", { class: "chart tiny" });
        row.append(node);
        const big = Math.max(...p.z.flat().map(Math.abs));
        heatmap(node, p.z, p.cols, p.rows, p.matrix + " [" + p.row_block + " × " + p.col_block + "] (max |w| " + fmt(big) + ")", { layout: { height: 200 + 14 * p.rows.length, width: 200 + 40 * p.cols.length } });
      }
    });
    return details;
  }

  // ---------- MLP
  function renderFunction(box, f) {
    const node = el("div", { class: "chart" });
    box.append(node);
    const s = f.current[0];
    const lit = f.knots.map((t) => s !== undefined && (f.anchor === "left" ? s > t : t > s));
    const hinge = f.anchor === "left" ? "ReLU(s − t_m)" : "ReLU(t_m − s)";
    const traces = [
      { type: "scatter", mode: "lines", name: "target " + f.name, x: f.grid, y: f.target, line: { color: "#222", dash: "dot" } },
      { type: "scatter", mode: "lines", name: "interpolant (the MLP)", x: f.grid, y: f.approx, line: { color: "#1f77b4" } },
      { type: "scatter", mode: "markers", name: "knots (lit: hinge " + hinge + " open at this s)", x: f.knots, y: f.knot_values,
        marker: { size: 9, color: lit.map((on) => (on ? "#ff7f0e" : "#bbb")), line: { width: 1, color: "#555" } } },
      { type: "scatter", mode: "markers", name: "this example's " + f.input, x: f.current, y: f.current_approx, marker: { size: 12, symbol: "x", color: "#d62728" } },
    ];
    const errors = f.current_target ? f.current.map((_, i) => (f.current_target[i] === null ? null : f.current_approx[i] - f.current_target[i])) : [];
    plot(node, traces, { title: { text: f.output + " += " + (f.scale === 1 ? "" : fmt(f.scale) + " · ") + f.name + "(" + f.input + ") on [" + fmt(f.low) + ", " + fmt(f.high) + "]", font: { size: 13 } },
      xaxis: { title: { text: f.input }, type: f.log_axis ? "log" : "linear" }, yaxis: { title: { text: f.name } }, height: 330, legend: { orientation: "h", y: -0.25 } });
    const rows = f.current.map((v, i) => el("tr", {}, el("td", { text: fmt(v) }), el("td", { text: f.current_tokens[i].join(", ") }), el("td", { text: fmt(f.current_approx[i]) }),
      el("td", { text: f.current_target ? fmt(f.current_target[i]) : "" }), el("td", { text: errors.length ? sci(errors[i]) : "" })));
    box.append(el("div", { class: "scroll" }, el("table", { class: "function-error" },
      el("tr", {}, el("th", { text: f.input }), el("th", { text: "tokens" }), el("th", { text: "interpolant" }), el("th", { text: "target " + f.name }), el("th", { text: "interpolant − target" })), ...rows)));
  }

  function renderSublayer(v) {
    const box = document.getElementById("sublayer");
    box.replaceChildren();
    for (let k = v.first; k <= v.last; k++) {
      const sub = D.sublayers[k];
      const part = el("div", { class: "sublayer" }, el("h3", { text: sub.hook + " (" + sub.kind + ")" }),
        el("p", { text: "reads " + (sub.reads.join(", ") || "nothing") + "; writes " + (sub.writes.join(", ") || "nothing") }));
      box.append(part);
      if (state.whole) { part.append(el("pre", { text: sub.describe })); continue; }
      for (const f of sub.functions) renderFunction(part, f);
      if (sub.kind === "attention") {
        const chosen = Math.min(state.head[sub.hook] || 0, sub.heads.length - 1);
        if (sub.heads.length > 1) {
          part.append(el("div", { class: "heads" }, ...sub.heads.map((h, m) => el("button", { class: m === chosen ? "head chosen" : "head", text: h.label || "head " + m,
            onclick: () => { state.head[sub.hook] = m; render(); } }))));
        }
        renderHead(part, sub, sub.heads[chosen]);
      } else {
        if (sub.moves.length) part.append(el("h4", { text: "Unit groups, read as statements (exact ReLU pairs t = ReLU(t) − ReLU(−t))" }), el("ul", { class: "moves" }, ...sub.moves.map((m) => el("li", { text: m.replace("<-", "←") }))));
        part.append(weights("W_in (rows: residual coordinates read, columns: runs of hidden units) and W_out (rows: hidden units, columns: coordinates written)", sub.weights));
      }
    }
  }

  // ---------- reference
  function renderCheckpoints(v) {
    const box = document.getElementById("checkpoints");
    box.replaceChildren();
    const hooks = new Set(D.sublayers.slice(v.first, v.last + 1).map((s) => s.hook));
    const here = D.checkpoints.filter((c) => hooks.has(c.hook));
    if (!here.length) {
      const next = D.checkpoints.find((c) => D.sublayers.findIndex((s) => s.hook === c.hook) > v.last);
      box.append(el("p", { text: D.checkpoints.length ? "No reference value at this point" + (next ? "; the next is after " + next.hook + " (" + next.label + ")." : ".") : "This example names no reference checkpoints." }));
      return;
    }
    for (const c of here) {
      const what = c.block ? "block " + c.block : "pattern of head " + c.head;
      const sub = D.sublayers.find((s) => s.hook === c.hook);
      const head = c.head === null ? null : sub.heads.find((h) => h.label === c.head);
      const columns = head ? range(D.tokens).filter((j) => head.keys[j]) : null;  // a pattern row: its unmasked keys
      const pick = (row) => (columns ? columns.map((j) => row[j]) : row);
      const side = columns ? " (keys " + columns.join(", ") + ")" : "";
      const table = el("table", { class: "checkpoint", "data-hook": c.hook, "data-label": c.label, "data-columns": JSON.stringify(columns) },
        el("tr", {}, el("th", { text: "token" }), el("th", { text: "transformer" + side }), el("th", { text: "reference" + side }), el("th", { text: "difference" })));
      c.actual.forEach((row, r) => {
        const token = c.tokens ? c.tokens[r] : r;
        table.append(el("tr", { class: "checkpoint-row", "data-token": String(token), "data-actual": JSON.stringify(row), "data-expected": JSON.stringify(c.expected[r]) },
          el("th", { text: String(token) }), el("td", { text: fmtVec(pick(row)) }), el("td", { text: fmtVec(pick(c.expected[r])) }),
          el("td", { text: sci(Math.max(...row.map((x, i) => Math.abs(x - c.expected[r][i])))) })));
      });
      box.append(el("h3", { text: c.label + " — " + what + " after " + c.hook + (c.compare === "direction" ? " (direction, up to sign)" : "") }),
        el("p", { class: c.exact ? "exact" : "approximate", text: (c.exact ? "Exact part: equal up to round-off" : "Approximate part: the error is bounded, not zero") + "; largest difference " + sci(c.difference) + " (relative " + sci(c.relative) + ")." }),
        el("div", { class: "scroll" }, table));
    }
  }

  // ---------- geometry
  function renderGeometry(v) {
    if (!D.geometry) return;
    const g = D.geometry, to = v.last + 1, node = document.getElementById("geometry");
    const pts = g.point_tokens || range(D.tokens);
    const points = pts.map((t) => read(to, t, g.points));
    const values = g.colour ? pts.map((t) => read(to, t, g.colour)) : null;
    const written = values && values.some((v) => v.some((x) => x !== 0));
    const colour = written ? values.map((v) => v[0]) : null;
    const label = g.colour ? (written ? " (colour: " + g.colour + "[0])" : " (" + g.colour + " not written yet: grey)") : "";
    const traces = [{ type: "scatter", mode: "markers", name: g.points + label, x: points.map((p) => p[0]), y: points.map((p) => p[1]),
      marker: colour ? { size: 10, color: colour, colorscale: "Viridis", cmin: 0, cmax: 1, showscale: true, colorbar: { thickness: 10 } } : { size: 9, color: g.colour ? "#aaa" : undefined } }];
    for (const [label, vec] of Object.entries(g.fixed)) traces.push({ type: "scatter", mode: "lines", name: label + " (the line it spans)", x: [-1.6 * vec[0], 1.6 * vec[0]], y: [-1.6 * vec[1], 1.6 * vec[1]], line: { dash: "dash", width: 2 } });
    const stepEnds = [0].concat(D.steps.map((s) => s.last + 1)).filter((p) => p < to);
    for (const name of g.arrows) {
      const earlier = stepEnds.map((p) => read(p, 0, name)).filter((a) => Math.hypot(a[0], a[1]) > 0);
      earlier.forEach((a, i) => traces.push({ type: "scatter", mode: "lines", name: name + " at step end " + i + " (norm " + fmt(Math.hypot(a[0], a[1])) + ")",
        x: [0, a[0]], y: [0, a[1]], line: { width: 1.5, color: "rgba(214,39,40," + (0.2 + 0.5 * (i + 1) / (earlier.length + 1)) + ")" } }));
      const a = read(to, 0, name), norm = Math.hypot(a[0], a[1]);
      traces.push({ type: "scatter", mode: "lines+markers", name: name + " (norm " + fmt(norm) + ")", x: [0, a[0]], y: [0, a[1]], line: { width: 3 }, marker: { size: [0, 10], symbol: "arrow", angleref: "previous" } });
    }
    if (g.centres) {
      const ct = g.centre_tokens || range(D.tokens);
      const ends = [0].concat(D.steps.map((s) => s.last + 1)).filter((p) => p <= to);
      if (ends[ends.length - 1] !== to) ends.push(to);
      ct.forEach((t, m) => {
        const path = ends.map((p) => read(p, t, g.centres));
        traces.push({ type: "scatter", mode: "lines+markers", name: g.centres + " of token " + t + " (path)", x: path.map((p) => p[0]), y: path.map((p) => p[1]), marker: { size: path.map((_, i) => (i === path.length - 1 ? 14 : 6)), symbol: "diamond" } });
      });
    }
    plot(node, traces, { height: 420, xaxis: { scaleanchor: "y", zeroline: true }, yaxis: { zeroline: true }, legend: { orientation: "h", y: -0.15 } });
  }

  // ---------- width
  function renderWidth() {
    if (!D.width) return;
    const box = document.getElementById("width");
    const rows = D.width.rows;
    const chart = el("div", { class: "chart" });
    const widthSlider = el("input", { id: "width-slider", type: "range", min: "0", max: String(rows.length - 1), value: String(state.width), step: "1" });
    const readout = el("p", { id: "width-readout" });
    box.replaceChildren(el("label", {}, "width M: ", widthSlider), readout, chart,
      el("p", { text: D.width.rate === null ? "" : "Fitted rate of the approximate error: M^" + D.width.rate.toFixed(2) + " (the hinge interpolants' theory: M^-2)." }));
    const ws = rows.map((r) => r.width);
    const first = rows.find((r) => r.approximate);
    const traces = [
      { type: "scatter", mode: "lines+markers", name: "approximate checkpoints (largest relative difference)", x: ws, y: rows.map((r) => r.approximate) },
      { type: "scatter", mode: "lines+markers", name: "exact checkpoints (0 drawn at 1e-17)", x: ws, y: rows.map((r) => (r.exact === null ? null : Math.max(r.exact, 1e-17))) },
    ];
    if (first) traces.push({ type: "scatter", mode: "lines", name: "M^-2 guide", x: ws, y: ws.map((w) => first.approximate * (first.width / w) ** 2), line: { dash: "dot", color: "#999" } });
    const update = () => {
      const r = rows[state.width];
      readout.textContent = "M = " + r.width + (r.width === D.width.own ? " (this example)" : "") + ": approximate parts " + sci(r.approximate) + ", exact parts " + sci(r.exact) + ".";
      plot(chart, traces.concat([{ type: "scatter", mode: "markers", name: "M = " + r.width, x: [r.width], y: [r.approximate], marker: { size: 16, color: "rgba(214,39,40,0.5)" } }]),
        { xaxis: { type: "log", title: { text: "width M" }, tickvals: ws, ticktext: ws.map(String) }, yaxis: { type: "log", title: { text: "relative difference to the reference" }, exponentformat: "power" }, height: 340, legend: { orientation: "h", y: -0.3 } });
    };
    widthSlider.addEventListener("input", () => { state.width = Number(widthSlider.value); update(); });
    update();
  }

  // ---------- the whole view
  function render() {
    slider.max = String(count() - 1);
    slider.value = String(state.index);
    const v = view();
    const sub = D.sublayers[v.first];
    const position = document.getElementById("position");
    position.dataset.hook = state.whole ? "" : sub.hook;
    position.dataset.step = state.whole ? v.name : sub.step;
    position.dataset.first = String(v.first);
    position.dataset.last = String(v.last);
    position.textContent = state.whole
      ? "step " + v.name + ": " + D.sublayers.slice(v.first, v.last + 1).map((s) => s.phase).join(" / ") + " (sublayers " + (v.first + 1) + "–" + (v.last + 1) + " of " + L + ")"
      : "step " + sub.step + " · phase " + sub.phase + " (sublayer " + (v.first + 1) + " of " + L + ", hook " + sub.hook + ")";
    document.querySelectorAll(".phase").forEach((b) => b.classList.remove("current"));
    document.querySelectorAll(".step").forEach((b) => b.classList.remove("current"));
    for (let k = v.first; k <= v.last; k++) document.getElementById("phase" + k).classList.add("current");
    const stepIndex = D.steps.findIndex((s) => s.first <= v.first && v.first <= s.last);
    document.getElementById("step" + stepIndex).classList.add("current");
    document.querySelectorAll("#pseudocode li").forEach((li) => li.classList.remove("current"));
    for (let k = v.first; k <= v.last; k++) {
      const line = D.sublayers[k].line;
      if (line !== null) document.getElementById("line" + line).classList.add("current");
    }
    renderStream(v);
    renderSublayer(v);
    renderCheckpoints(v);
    renderGeometry(v);
    document.body.dataset.ready = String(Date.now());
  }
  renderWidth();
  render();
})();
