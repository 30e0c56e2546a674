// Shared by the main page and the viewer page: auth, signalling, frame probing.
// Plain ES module, no build step.

const params = new URLSearchParams(location.search);
export const token = params.get("token");
export const query = params;

/** Headers for our API: the bearer token when the page URL carried one. */
export function authHeaders(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : { ...extra };
}

/** Resolve once ICE gathering is complete (the server does not trickle candidates). */
export function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Throw an Error carrying the server's {"error": ...} reason. */
async function failure(response) {
  let reason = response.statusText;
  try { reason = (await response.json()).error || reason; } catch (_) { /* not JSON */ }
  const err = new Error(`${response.status}: ${reason}`);
  err.status = response.status;
  return err;
}

/** Page signalling: POST /offer with JSON, returns {sdp, type, session}. */
export async function postOffer(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const response = await fetch("/offer", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
  });
  if (!response.ok) throw await failure(response);
  const answer = await response.json();
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  return answer;
}

/** WHEP: POST application/sdp, 201 + Location. Returns the resource URL. */
export async function postWhep(pc) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const response = await fetch("/whep", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/sdp" }),
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) throw await failure(response);
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return response.headers.get("Location");
}

/** End a server session when the page goes away (keepalive lets it outlive the tab). */
export function deleteOnExit(getUrl) {
  window.addEventListener("pagehide", () => {
    const url = getUrl();
    if (url) fetch(url, { method: "DELETE", headers: authHeaders(), keepalive: true });
  });
}

// Where the probe samples a frame, as fractions of width and height: 16 bits of the frame number
// along the top band, then four flat colour patches. tests/browser/fake_camera.py draws the same
// layout into the fake camera file, so tests and the latency benchmark can match input and
// output frames and compare their pixels.
export const PROBE_POINTS = [
  ...Array.from({ length: 16 }, (_, i) => [(i + 0.5) / 16, 0.05]),
  [0.25, 0.4], [0.75, 0.4], [0.25, 0.8], [0.75, 0.8],
];

/**
 * Counts the frames a <video> presents (requestVideoFrameCallback) and the fps over the last
 * second; with `sample` it also records, per frame, the time and RGB at PROBE_POINTS.
 */
export class FrameProbe {
  constructor(video, { sample = false, keep = 600 } = {}) {
    this.video = video;
    this.sample = sample;
    this.keep = keep;
    this.frames = 0;
    this.records = [];
    this.times = [];
    this.width = 0;
    this.height = 0;
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    const tick = (now, meta) => {
      this.frames += 1;
      this.width = meta.width;
      this.height = meta.height;
      this.times.push(now);
      while (this.times.length && this.times[0] < now - 1000) this.times.shift();
      if (this.sample) this.record(now);
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  get fps() { return this.times.length; }

  record(now) {
    const w = 160, h = 120;
    this.canvas.width = w; this.canvas.height = h;
    this.ctx.drawImage(this.video, 0, 0, w, h);
    const data = this.ctx.getImageData(0, 0, w, h).data;
    const samples = [];
    for (const [fx, fy] of PROBE_POINTS) {
      const i = (Math.min(h - 1, Math.floor(fy * h)) * w + Math.min(w - 1, Math.floor(fx * w))) * 4;
      samples.push(data[i], data[i + 1], data[i + 2]);
    }
    this.records.push([Math.round(now * 10) / 10, samples]);
    if (this.records.length > this.keep) this.records.shift();
  }
}

/** Receiver-side numbers from getStats: fps, decoded, dropped, jitter-buffer delay, RTT. */
export async function receiveStats(pc) {
  const out = { framesDecoded: 0, framesDropped: 0, jitterMs: 0, rttMs: 0, codec: "" };
  if (!pc) return out;
  const report = await pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded = s.framesDecoded || 0;
      out.framesDropped = s.framesDropped || 0;
      out.packetsLost = s.packetsLost || 0;
      if (s.jitterBufferEmittedCount) out.jitterMs = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
      out.codec = codecs[s.codecId] || "";
    }
    if (s.type === "candidate-pair" && s.state === "succeeded" && s.currentRoundTripTime !== undefined) {
      out.rttMs = 1000 * s.currentRoundTripTime;
    }
  });
  return out;
}
