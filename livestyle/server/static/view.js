// Viewer-only page (an OBS browser source): plays the styled output over WHEP, nothing else.
import { FrameProbe, deleteOnExit, postWhep, query, receiveStats } from "/static/common.js";

const video = document.getElementById("output");
const status = document.getElementById("status");
const waiting = document.getElementById("waiting");
// "waiting for livestyle…" covers the black video until a frame is on screen (again after a reconnect)
video.addEventListener("playing", () => { waiting.hidden = true; });
video.addEventListener("emptied", () => { waiting.hidden = false; });
let pc = null;
let resource = null;
let probe = null;

async function play() {
  pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    video.srcObject = stream;
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" || pc.connectionState === "closed") {
      status.textContent = `connection ${pc.connectionState}; retrying`;
      setTimeout(restart, 2000);
    } else if (pc.connectionState === "connected") {
      status.textContent = "";
    }
  };
  resource = await postWhep(pc);
  video.play().catch(() => { video.muted = true; video.play(); });
}

async function restart() {
  if (pc) pc.close();
  try { await play(); } catch (err) { status.textContent = String(err.message || err); setTimeout(restart, 3000); }
}

probe = new FrameProbe(video, { sample: query.get("probe") === "1" });
deleteOnExit(() => resource);
window.livestyle = {
  async report() {
    return { outFrames: probe.frames, outWidth: probe.width, outHeight: probe.height, outFps: probe.fps,
             outProbe: probe.records, state: pc ? pc.connectionState : "new", resource,
             receive: await receiveStats(pc), error: status.textContent, waiting: !waiting.hidden };
  },
};
restart();
