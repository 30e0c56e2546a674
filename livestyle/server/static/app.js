// The streamer's page: camera in, styled video out, controls, live overlay.
// Talks to /offer (WebRTC signalling) and the control API under /api (when the server has one).
import { FrameProbe, authHeaders, deleteOnExit, postOffer, query, receiveStats } from "/static/common.js";

const $ = (id) => document.getElementById(id);
const input = $("input");
const output = $("output");
const sample = query.get("probe") === "1";
const inProbe = new FrameProbe(input, { sample });
const outProbe = new FrameProbe(output, { sample });
let pc = null;
let stream = null;
let session = null;
let serverStats = {};
let lastError = "";

function setStatus(text) { $("status").textContent = text; }
function showError(err) { lastError = String(err.message || err); setStatus(lastError); }

// ---------------------------------------------------------------- camera + WebRTC
async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const select = $("camera");
  const current = select.value;
  select.length = 1;
  for (const d of devices.filter((d) => d.kind === "videoinput")) {
    const option = new Option(d.label || `camera ${select.length}`, d.deviceId);
    select.add(option);
  }
  select.value = current;
}

async function openCamera() {
  const [width, height] = $("resolution").value.split("x").map(Number);
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } };
  if ($("camera").value) video.deviceId = { exact: $("camera").value };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch (err) {
    if (err.name === "NotFoundError" || err.name === "NotReadableError") {
      return await navigator.mediaDevices.getUserMedia({ video, audio: false });  // no microphone
    }
    throw err;
  }
}

async function start() {
  $("start").disabled = true;
  setStatus("starting…");
  try {
    stream = await openCamera();
    input.srcObject = stream;
    await listCameras();
    pc = new RTCPeerConnection();
    const [videoTrack] = stream.getVideoTracks();
    videoTrack.contentHint = "detail";  // keep the resolution; let the frame rate give way
    pc.addTransceiver(videoTrack, { direction: "sendrecv", streams: [stream] });
    for (const audioTrack of stream.getAudioTracks()) {
      pc.addTransceiver(audioTrack, { direction: "sendrecv", streams: [stream] });
    }
    const remote = new MediaStream();
    pc.ontrack = (event) => { remote.addTrack(event.track); output.srcObject = remote; };
    const channel = pc.createDataChannel("stats");
    channel.onmessage = (event) => { serverStats = JSON.parse(event.data); };
    pc.onconnectionstatechange = () => {
      setStatus(pc.connectionState);
      if (pc.connectionState === "failed") stop();
    };
    const answer = await postOffer(pc);
    session = answer.session;
    $("stop").disabled = false;
    output.play().catch(() => { output.muted = true; output.play(); });
  } catch (err) {
    showError(err);
    await stop();
  }
}

async function stop() {
  const id = session;
  session = null;
  if (id) {
    fetch(`/session/${id}`, { method: "DELETE", headers: authHeaders() }).catch(() => {});
  }
  if (pc) { pc.close(); pc = null; }
  if (stream) { stream.getTracks().forEach((t) => t.stop()); stream = null; }
  $("start").disabled = false;
  $("stop").disabled = true;
  if (!lastError) setStatus("stopped");
}

deleteOnExit(() => (session ? `/session/${session}` : null));

// ---------------------------------------------------------------- overlay and state badges
let pipelineStats = {};  // GET /api/stats: the runner's view (what the viewer gets), model, warm-up

async function refreshOverlay() {
  const rx = await receiveStats(pc);
  const ps = pipelineStats;
  // Prefer the server's viewer-side numbers (frames written, lost, glass-to-glass) when it reports them.
  const fps = ps.fps_written !== undefined ? Number(ps.fps_written).toFixed(1) : outProbe.fps;
  $("ov-fps").textContent = `${fps} fps`;
  if (ps.g2g_p95_ms !== undefined && ps.g2g_p95_ms !== null) {
    $("ov-latency").textContent = `g2g p95 ${Math.round(ps.g2g_p95_ms)} ms`;
  } else {
    // Server: arrival → encoded output; browser: jitter buffer + half the round trip each way.
    const latency = (serverStats.delay_ms || 0) + rx.jitterMs + rx.rttMs;
    $("ov-latency").textContent = pc ? `≈${Math.round(latency)} ms` : "– ms";
  }
  const lost = ps.frames_lost !== undefined ? ps.frames_lost : (serverStats.ingest_dropped || 0) + rx.framesDropped;
  $("ov-drops").textContent = `${lost} lost`;
}
setInterval(refreshOverlay, 1000);

function showState(ps) {
  const model = ps.model || {};
  if (model.name) $("model-badge").textContent = `model ${model.name}`;
  $("model-badge").classList.toggle("warn", model.styles === false);
  if (model.max_steps) $("steps").max = model.max_steps;
  const warnings = model.warnings || [];
  $("notice").hidden = warnings.length === 0;
  $("notice").textContent = warnings.join(" ");
  const warming = Boolean(ps.warming);
  $("warm-badge").hidden = !warming;
  if (warming && ps.elapsed_s !== undefined) {
    const about = model.warmup_estimate_s;  // what it took last time on this machine, if known
    $("warm-badge").textContent = `warming up ${Math.round(ps.elapsed_s)} s`
      + (about !== undefined && about !== null ? ` of about ${Math.round(about)} s` : "");
  }
  if (ps.bypass !== undefined) showBypass(ps.bypass);
  // The governor: the level it holds when it stepped quality down, and why (its latest decision).
  const gov = ps.governor || {};
  const last = (gov.decisions || []).slice(-1)[0];
  $("governor-badge").hidden = !(gov.active && gov.index > 0);
  if (gov.active && gov.index > 0) {
    $("governor-badge").textContent = `governor: ${gov.level}`;
    $("governor-badge").title = last ? `${last.from} → ${last.to}: ${last.reason}` : "";
  }
}

async function refreshState() {
  if (!controlsEnabled) return;
  try {
    const response = await fetch("/api/stats", { headers: authHeaders() });
    if (!response.ok) return;
    pipelineStats = await response.json();
    showState(pipelineStats);
  } catch (_) { /* server restarting: keep the last state */ }
}
setInterval(refreshState, 1000);

// ---------------------------------------------------------------- controls (/api, when present)
let controlsEnabled = true;

async function api(method, path, body) {
  if (!controlsEnabled) return null;
  const init = { method, headers: authHeaders(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (response.status === 404 && path.startsWith("/api/params")) {
    controlsEnabled = false;
    $("controls").classList.add("disabled");
    $("control-error").textContent = "this server has no control API (started without a pipeline controller)";
    return null;
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("control-error").textContent = data.error || `${response.status} ${response.statusText}`;
    return null;
  }
  $("control-error").textContent = data.notice || "";  // e.g. a prompt on passthrough: it changes nothing
  return data;
}

let bypassOn = false;
function showBypass(on) {
  bypassOn = Boolean(on);
  $("bypass").setAttribute("aria-pressed", String(bypassOn));
  $("bypass-badge").hidden = !bypassOn;
}

function showParams(p) {
  if (!p) return;
  if (p.strength !== undefined) { $("strength").value = p.strength; $("strength-value").value = Number(p.strength).toFixed(2); }
  if (p.steps !== undefined) { $("steps").value = p.steps; $("steps-value").value = p.steps; }
  if (p.seed !== undefined) $("seed").value = p.seed;
  if (p.bypass !== undefined) showBypass(p.bypass);
  // the current prompt stays in the box, editable (unless the streamer is typing in it)
  if (p.prompt && document.activeElement !== $("prompt")) $("prompt").value = p.prompt;
  document.querySelectorAll("#presets button").forEach((b) => b.classList.toggle("active", b.dataset.name === p.preset));
  if (p.loras !== undefined) showLora(p.loras);
}

// ---------------------------------------------------------------- LoRAs (GET /api/loras: the LoRA folder)
function showLora(loras) {
  const first = loras[0];
  const select = $("lora");
  if (first && ![...select.options].some((o) => o.value === first.name)) select.add(new Option(first.name, first.name));
  select.value = first ? first.name : "";
  if (first) { $("lora-scale").value = first.scale; $("lora-scale-value").value = Number(first.scale).toFixed(2); }
}

async function loadLoras() {
  const data = await api("GET", "/api/loras");
  if (!data) return;
  const select = $("lora");
  select.replaceChildren(new Option("none", ""), ...data.loras.map((l) => new Option(l.name, l.name)));
  select.title = data.folder ? `LoRA files in ${data.folder}` : "";
  showLora(data.active);
}

function sendLora() {
  const name = $("lora").value;
  const scale = Number($("lora-scale").value);
  $("lora-scale-value").value = scale.toFixed(2);
  return api("PATCH", "/api/params", { loras: name ? [{ name, scale }] : [] }).then(showParams);
}

const HISTORY_KEY = "livestyle.prompts";
function history() { try { return JSON.parse(localStorage.getItem(HISTORY_KEY)) || []; } catch (_) { return []; } }
function renderHistory() {
  const list = $("history");
  list.replaceChildren(...history().map((text) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = text;
    button.onclick = () => sendPrompt(text);
    item.append(button);
    return item;
  }));
}

async function sendPrompt(text) {
  text = text.trim();
  if (!text) return;
  const params = await api("POST", "/api/prompt", { prompt: text });
  if (!params) return;
  showParams(params);
  const items = [text, ...history().filter((t) => t !== text)].slice(0, 20);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(items));
  renderHistory();
}

async function loadPresets() {
  const data = await api("GET", "/api/presets");
  if (!data) return;
  $("presets").replaceChildren(...data.presets.map((p) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${p.number}. ${p.name}`;
    button.dataset.name = p.name;
    button.title = p.prompt;
    button.onclick = async () => showParams(await api("POST", `/api/presets/${p.number}`));
    return button;
  }));
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
const patch = debounce(async (fields) => showParams(await api("PATCH", "/api/params", fields)), 150);
$("lora").addEventListener("change", sendLora);
$("lora-scale").addEventListener("input", debounce(sendLora, 150));

$("prompt-form").onsubmit = (event) => { event.preventDefault(); sendPrompt($("prompt").value); };
$("prompt").onkeydown = (event) => { if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("prompt-form").requestSubmit(); } };
$("strength").oninput = () => { $("strength-value").value = Number($("strength").value).toFixed(2); patch({ strength: Number($("strength").value) }); };
$("steps").oninput = () => { $("steps-value").value = $("steps").value; patch({ steps: Number($("steps").value) }); };
$("seed").onchange = () => patch({ seed: Number($("seed").value) });
$("seed-random").onclick = () => { $("seed").value = Math.floor(Math.random() * 2 ** 31); patch({ seed: Number($("seed").value) }); };
async function toggleBypass() {  // the panic button: no debounce
  showBypass(!bypassOn);
  showParams(await api("PATCH", "/api/params", { bypass: bypassOn }));
}
$("bypass").onclick = toggleBypass;

// Keys, as in the terminal: B bypass, 1-9 presets, / the prompt box (not while typing in a field).
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest && event.target.closest("textarea, input, select");
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "b" || event.key === "B") { event.preventDefault(); toggleBypass(); }
  else if (/^[1-9]$/.test(event.key)) { event.preventDefault(); api("POST", `/api/presets/${event.key}`).then(showParams); }
  else if (event.key === "/") { event.preventDefault(); $("prompt").focus(); $("prompt").select(); }
});
$("start").onclick = start;
$("stop").onclick = stop;
const viewLink = $("view-link");
if (query.get("token")) viewLink.href = `/view?token=${encodeURIComponent(query.get("token"))}`;

function listenForParams() {
  if (!controlsEnabled) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const tokenPart = query.get("token") ? `?token=${encodeURIComponent(query.get("token"))}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/api/events${tokenPart}`);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "params") showParams(message.params);
  };
  socket.onclose = () => setTimeout(listenForParams, 3000);
}

// ---------------------------------------------------------------- start-up
renderHistory();
(async () => {
  const params = await api("GET", "/api/params");
  if (params) { showParams(params); loadPresets(); loadLoras(); listenForParams(); refreshState(); }
})();
navigator.mediaDevices.addEventListener("devicechange", listCameras);
listCameras().catch(() => {});
if (query.get("autostart") === "1") start();

// For tests and benchmarks: frame counts, pixel probes and receive stats of this page.
window.livestyle = {
  start, stop,
  async report() {
    return {
      inFrames: inProbe.frames, outFrames: outProbe.frames, outFps: outProbe.fps,
      outWidth: outProbe.width, outHeight: outProbe.height, inWidth: inProbe.width, inHeight: inProbe.height,
      inProbe: inProbe.records, outProbe: outProbe.records,
      state: pc ? pc.connectionState : "new", session, server: serverStats,
      receive: await receiveStats(pc), error: lastError,
    };
  },
};
