// phxq console: live figures for the server-rendered pages. Every value goes into the
// page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 3000;
const MAX_SAMPLES = 200; // 10 minutes at POLL_MS
const COLORS = ["#0b6bcb", "#c62828", "#1a7f37", "#8a4b00", "#6a1b9a", "#00838f", "#ad1457", "#455a64"];
const SVG = "http://www.w3.org/2000/svg";

function poll(url, onData) {
  const tick = () => {
    fetch(url, { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status + " " + r.statusText))))
      .then(onData)
      .catch((e) => console.warn("console poll", url, e));
  };
  tick();
  setInterval(tick, POLL_MS);
}

function rate(perSec, unit) {
  if (!isFinite(perSec)) return "-";
  const units = unit === "B" ? ["B/s", "KiB/s", "MiB/s", "GiB/s"] : ["rec/s", "k rec/s", "M rec/s", "G rec/s"];
  const step = unit === "B" ? 1024 : 1000;
  let v = perSec, i = 0;
  while (v >= step && i < units.length - 1) { v /= step; i++; }
  return (i === 0 ? v.toFixed(1) : v.toFixed(2)) + " " + units[i];
}

// Topics page: rates from the traffic counters of two polls.
function topicRates(table) {
  let prev = null;
  poll(table.dataset.api, (view) => {
    const now = performance.now();
    if (prev) {
      const secs = (now - prev.at) / 1000;
      for (const t of view.topics) {
        const row = Array.from(table.querySelectorAll("tr[data-topic]")).find((r) => r.dataset.topic === t.name);
        const before = prev.totals.get(t.name);
        if (!row || !before || secs <= 0) continue;
        const d = (k) => Math.max(0, t.totals[k] - before[k]) / secs;
        row.querySelector(".rate-in").textContent = rate(d("bytes_in"), "B") + ", " + rate(d("records_in"), "rec");
        row.querySelector(".rate-out").textContent = rate(d("bytes_out"), "B") + ", " + rate(d("records_out"), "rec");
      }
    }
    prev = { at: now, totals: new Map(view.topics.map((t) => [t.name, t.totals])) };
  });
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// A line per series over the samples' times: [{name, color, points: [[t, v]...]}].
function drawPlot(box, series, t0, t1) {
  const W = 900, H = 220, L = 56, R = 10, T = 10, B = 24;
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t) => L + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - L - R) : 0);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  svg.appendChild(el("title", {}, "Consumer lag over time"));
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el("line", { class: "axis", x1: L, x2: W - R, y1: y(max * f), y2: y(max * f) }));
    svg.appendChild(el("text", { x: L - 6, y: y(max * f) + 4, "text-anchor": "end" }, String(Math.round(max * f))));
  }
  const secs = Math.round((t1 - t0) / 1000);
  svg.appendChild(el("text", { x: L, y: H - 6 }, `${secs} s ago`));
  svg.appendChild(el("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
  for (const s of series) {
    const pts = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.appendChild(el("polyline", { points: pts, fill: "none", stroke: s.color, "stroke-width": s.width || 1.5, "data-series": s.name }));
  }
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const s of series) {
    const span = document.createElement("span");
    span.style.color = s.color;
    span.textContent = "■ " + s.name;
    legend.appendChild(span);
  }
  box.replaceChildren(svg, legend);
}

// A group's page: lag sampled every POLL_MS, kept here (bounded), plotted.
function lagPlot(box) {
  const samples = [];
  poll(box.dataset.api, (view) => {
    const lags = {};
    for (const p of view.partitions) {
      if (p.lag === null) continue;
      lags[p.topic + ":" + p.partition] = p.lag;
      for (const cell of document.querySelectorAll("td[data-tp]")) {
        if (cell.dataset.tp === p.topic + ":" + p.partition) cell.textContent = String(p.lag);
      }
    }
    const total = document.getElementById("total-lag");
    if (total) total.textContent = String(view.total_lag);
    samples.push({ t: Date.now(), total: view.total_lag, lags });
    if (samples.length > MAX_SAMPLES) samples.shift();
    const names = Object.keys(lags).sort().slice(0, COLORS.length - 1);
    const series = [{ name: "total", color: COLORS[0], width: 2.5, points: samples.map((s) => [s.t, s.total]) }];
    names.forEach((n, i) => series.push({
      name: n, color: COLORS[i + 1],
      points: samples.filter((s) => n in s.lags).map((s) => [s.t, s.lags[n]]),
    }));
    drawPlot(box, series, samples[0].t, samples[samples.length - 1].t);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const topics = document.querySelector("table#topics[data-api]");
  if (topics) topicRates(topics);
  const plot = document.querySelector("#lag-plot[data-api]");
  if (plot) lagPlot(plot);
});
