"""The page at ``GET /live``: follow a live session in a browser. One self-contained document (no CDN,
no library: it works offline, next to private recordings), reading ``/live/events`` with EventSource.
It shows the newest emotions of every face track and of the voice, and a rolling chart of the leading
emotions' shares of one track over the last minute of media time. Every text from the stream is set with
``textContent``, never parsed as HTML."""

LIVE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Empathic Insight: live</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.2em; color: #222; }
  form { display: flex; flex-wrap: wrap; gap: .6em; align-items: end; margin-bottom: 1em; }
  label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
  input[type=text] { width: 28em; }
  input[type=number] { width: 5em; }
  #status { margin: .4em 0 1em; color: #555; }
  #status.error { color: #b00; }
  .cards { display: flex; flex-wrap: wrap; gap: 1em; }
  .card { border: 1px solid #ccc; border-radius: 6px; padding: .6em .8em; min-width: 15em; }
  .card h3 { margin: 0 0 .4em; font-size: 14px; }
  .row { display: flex; align-items: center; gap: .4em; margin: .15em 0; }
  .row .name { width: 9em; }
  .row .bar { height: .7em; background: #4a7bd0; border-radius: 2px; }
  .row .value { color: #555; font-size: 12px; }
  .muted { color: #888; font-size: 12px; }
  .chart-of { margin-top: 1em; }
  canvas { border: 1px solid #ddd; margin-top: 1em; }
</style>
</head>
<body>
<h1>Live emotions</h1>
<form id="start">
  <label>Source (stream URL, device or file under MEDIA_ROOTS)<input type="text" id="source" required
    placeholder="rtsp://camera.lab.example/stream"></label>
  <label>Faces<input type="checkbox" id="face" checked></label>
  <label>Voice<input type="checkbox" id="voice" checked></label>
  <label>Face samples/s<input type="number" id="pps" value="2" min="0.1" max="30" step="0.1"></label>
  <label>Window s<input type="number" id="window" value="10" min="1" max="30" step="1"></label>
  <label>Hop s<input type="number" id="hop" value="3" min="0.5" max="60" step="0.5"></label>
  <button type="submit" id="go">Start</button>
  <button type="button" id="stop" disabled>Stop</button>
</form>
<div id="status">Not started.</div>
<div class="cards" id="cards"></div>
<div class="chart-of">Chart of <select id="chart-of"></select></div>
<canvas id="chart" width="900" height="260"></canvas>
<div class="muted">Shares are the softmax of the 40 emotions (for ranking, not probabilities).
Latency: seconds from the media's arrival to its result.</div>
<script>
"use strict";
const HISTORY_S = 60, SHOWN = 4, COLOURS = ["#4a7bd0", "#d0704a", "#4aa05a", "#9a4ad0", "#c0a020"];
let feed = null;
const cards = new Map();        // key ("face 3", "voice") -> card element
const history = new Map();      // key -> [{t, shares: {id: share}}]
const names = {};               // emotion id -> name
const $ = (id) => document.getElementById(id);

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function card(key) {
  if (!cards.has(key)) {
    const element = document.createElement("div");
    element.className = "card";
    element.dataset.key = key;
    const title = document.createElement("h3");
    title.textContent = key;
    element.appendChild(title);
    const body = document.createElement("div");
    element.appendChild(body);
    $("cards").appendChild(element);
    cards.set(key, element);
    const option = document.createElement("option");
    option.value = option.textContent = key;
    $("chart-of").appendChild(option);
  }
  return cards.get(key);
}

function show(key, top, note) {
  const body = card(key).lastChild;
  body.replaceChildren();
  for (const emotion of top.slice(0, 3)) {
    const row = document.createElement("div");
    row.className = "row";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = emotion.name;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.max(2, Math.round(emotion.share * 400)) + "px";
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = emotion.share.toFixed(3);
    row.append(name, bar, value);
    body.appendChild(row);
  }
  const extra = document.createElement("div");
  extra.className = "muted";
  extra.textContent = note;
  body.appendChild(extra);
}

function remember(key, t, top) {
  const shares = {};
  for (const emotion of top) { shares[emotion.id] = emotion.share; names[emotion.id] = emotion.name; }
  const list = history.get(key) || [];
  list.push({t, shares});
  while (list.length && list[0].t < t - HISTORY_S) list.shift();
  history.set(key, list);
}

function draw() {
  const canvas = $("chart"), context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const list = history.get($("chart-of").value) || [];
  if (!list.length) return;
  const totals = {};
  for (const point of list) for (const id in point.shares) totals[id] = (totals[id] || 0) + point.shares[id];
  const leading = Object.keys(totals).sort((a, b) => totals[b] - totals[a]).slice(0, SHOWN);
  const end = list[list.length - 1].t, start = Math.max(list[0].t, end - HISTORY_S), span = Math.max(end - start, 1);
  let top = 0;
  for (const point of list) for (const id of leading) top = Math.max(top, point.shares[id] || 0);
  top = top > 0 ? top * 1.1 : 1;
  const x = (t) => 40 + (t - start) / span * (canvas.width - 180);
  const y = (v) => canvas.height - 20 - v / top * (canvas.height - 40);
  context.strokeStyle = "#999"; context.beginPath();
  context.moveTo(40, 10); context.lineTo(40, canvas.height - 20); context.lineTo(canvas.width - 140, canvas.height - 20);
  context.stroke();
  context.fillStyle = "#555"; context.font = "11px system-ui";
  context.fillText(top.toFixed(2), 4, 16); context.fillText("0", 28, canvas.height - 22);
  context.fillText(start.toFixed(0) + " s", 40, canvas.height - 6);
  context.fillText(end.toFixed(0) + " s", canvas.width - 170, canvas.height - 6);
  leading.forEach((id, k) => {
    context.strokeStyle = context.fillStyle = COLOURS[k % COLOURS.length];
    context.beginPath();
    list.forEach((point, i) => {
      const px = x(point.t), py = y(point.shares[id] || 0);
      if (i === 0) context.moveTo(px, py); else context.lineTo(px, py);
    });
    context.stroke();
    context.fillText(names[id] || id, canvas.width - 130, 20 + 16 * k);
  });
}

function stop(text) {
  if (feed) { feed.close(); feed = null; }
  $("go").disabled = false; $("stop").disabled = true;
  if (text) status(text);
}

$("start").addEventListener("submit", (event) => {
  event.preventDefault();
  stop();
  const query = new URLSearchParams({source: $("source").value, face: $("face").checked ? "1" : "0",
    voice: $("voice").checked ? "1" : "0", pps: $("pps").value, window: $("window").value, hop: $("hop").value});
  status("Opening " + $("source").value + " ...");
  feed = new EventSource("live/events?" + query.toString());  // relative: works behind a path prefix
  $("go").disabled = true; $("stop").disabled = false;
  feed.addEventListener("start", (e) => {
    const d = JSON.parse(e.data);
    status("Live: " + d.source + (d.video ? " (" + d.width + "x" + d.height + ")" : "") +
           (d.face ? ", faces at " + d.pps + "/s" : "") + (d.voice ? ", voice every " + d.hop_s + " s" : ""));
  });
  feed.addEventListener("face", (e) => {
    const d = JSON.parse(e.data);
    for (const face of d.faces) {
      const key = "face " + face.track_id;
      show(key, face.top, "at " + d.media_time_s.toFixed(1) + " s, latency " + d.latency_s.toFixed(2) +
           " s" + (face.flags.length ? ", " + face.flags.join(", ") : ""));
      remember(key, d.media_time_s, face.top);
    }
    draw();
  });
  feed.addEventListener("voice", (e) => {
    const d = JSON.parse(e.data);
    if (!d.speech) {  // keep the last emotions heard, say that it is quiet now
      const body = card("voice").lastChild;
      let note = body.querySelector(".muted");
      if (!note) { note = document.createElement("div"); note.className = "muted"; body.appendChild(note); }
      note.textContent = "no speech at " + d.media_time_s.toFixed(1) + " s";
      return;
    }
    show("voice", d.top, d.segment[0].toFixed(1) + "-" + d.segment[1].toFixed(1) + " s, latency " +
         d.latency_s.toFixed(2) + " s" + (d.flags.length ? ", " + d.flags.join(", ") : ""));
    remember("voice", d.media_time_s, d.top);
    draw();
  });
  feed.addEventListener("summary", (e) => {
    const d = JSON.parse(e.data);
    const parts = [d.ended + " after " + d.media_s.toFixed(1) + " s"];
    if (d.face) parts.push("faces " + d.face.processed + "/" + d.face.offered + ", " + d.face.skipped + " skipped, p95 " +
      (d.face.latency_p95_s === null ? "-" : d.face.latency_p95_s.toFixed(2) + " s"));
    if (d.voice) parts.push("voice " + d.voice.processed + "/" + d.voice.offered + " windows");
    stop("Ended: " + parts.join("; "));
  });
  feed.addEventListener("error", (e) => {
    if (e.data) { stop(); status("Error: " + JSON.parse(e.data).error, true); return; }
    if (feed && feed.readyState === EventSource.CLOSED) { stop(); status("The server refused or closed the stream.", true); }
    else if (feed) { stop(); status("The stream was interrupted.", true); }
  });
});
$("stop").addEventListener("click", () => stop("Stopped."));
$("chart-of").addEventListener("change", draw);
</script>
</body>
</html>
"""
