"""Server pieces without a browser: relay hand-offs, offer validation, HTTP rules, auth, encoder."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender

from livestyle.errors import ServerError, SinkError, SourceError
from livestyle.ingest.webrtc import WebRTCSource, open_webrtc_source
from livestyle.output.webrtc import PacketEncoder, WebRTCSink, open_webrtc_sink
from livestyle.engine.frames import Frame, StreamInfo
from livestyle.server.app import ServerSettings, ServerThread, is_loopback
from livestyle.server.hub import SessionLimitError, StreamHub
from livestyle.server.relay import Broadcast, Closed, ThreadSlot
from livestyle.server.webrtc import DelayedAudioTrack, OfferError, validate_offer

TOKEN = "test-token-0123456789"


# ------------------------------------------------------------------ relay


def test_thread_slot_keeps_the_newest_item_and_counts_drops() -> None:
    slot: ThreadSlot[int] = ThreadSlot()
    for i in range(5):
        slot.put(i)
    assert slot.get(0) == 4
    assert slot.dropped == 4 and slot.delivered == 1
    assert slot.get(0.01) is None  # nothing new: timeout


def test_thread_slot_close_wakes_a_blocked_reader() -> None:
    slot: ThreadSlot[int] = ThreadSlot()
    raised = threading.Event()

    def reader() -> None:
        try:
            slot.get()
        except Closed:
            raised.set()

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.05)
    slot.close()
    t.join(5)
    assert raised.is_set()
    slot.reopen()
    slot.put(7)
    assert slot.get(0) == 7


def test_broadcast_gives_each_reader_the_newest_item_and_counts_skips() -> None:
    async def main() -> tuple[list[int], int, list[int]]:
        loop = asyncio.get_running_loop()
        b: Broadcast[int] = Broadcast(loop)
        slow, fast = b.subscribe(), b.subscribe()
        got_fast: list[int] = []

        def producer() -> None:
            for i in range(1, 4):
                b.publish(i)

        t = threading.Thread(target=producer)
        t.start()
        t.join()
        got_fast.append(await fast.next())  # all three delivered already: newest wins
        b.publish(4)
        await asyncio.sleep(0)  # let the scheduled hand-over run
        got_slow = [await slow.next()]
        got_fast.append(await fast.next())
        b.close()
        with pytest.raises(Closed):
            await fast.next()
        return got_slow, slow.skipped, got_fast

    got_slow, skipped, got_fast = asyncio.run(main())
    assert got_slow == [4] and skipped == 3
    assert got_fast == [3, 4]


# ------------------------------------------------------------------ offers


def _offer(direction: str = "sendrecv", audio: bool = True, only_codec: str | None = None) -> str:
    async def make() -> str:
        pc = RTCPeerConnection()
        t = pc.addTransceiver("video", direction=direction)
        if only_codec:
            t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == only_codec])
        if audio:
            pc.addTransceiver("audio", direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


@pytest.fixture(scope="module")
def offers() -> dict[str, str]:
    return {d: _offer(d) for d in ("sendrecv", "sendonly", "recvonly")}


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        ("", "empty SDP offer"),
        ("hello", "must start with 'v=0'"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no video m-line"),
        ("v=0\r\nm=video notaport UDP/TLS/RTP/SAVPF 96\r\n", "malformed SDP offer"),
    ],
)
def test_malformed_offers_are_refused_with_a_reason(sdp: str, message: str) -> None:
    with pytest.raises(OfferError, match=message):
        validate_offer(sdp)


def test_offer_roles(offers: dict[str, str]) -> None:
    assert validate_offer(offers["sendrecv"])[0] == "publisher"
    assert validate_offer(offers["sendonly"])[0] == "publisher"
    assert validate_offer(offers["recvonly"])[0] == "viewer"
    with pytest.raises(OfferError, match="WHIP offers must send video"):
        validate_offer(offers["recvonly"], want="publish")
    stripped = "\r\n".join(l for l in offers["sendrecv"].split("\r\n") if not l.startswith("a=fingerprint"))
    with pytest.raises(OfferError, match="DTLS fingerprint"):
        validate_offer(stripped)


# ------------------------------------------------------------------ HTTP


def http(method: str, url: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, Any, dict[str, str]]:
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text), hdrs
    except json.JSONDecodeError:
        return status, text, hdrs


JSON = {"Content-Type": "application/json"}
SDP = {"Content-Type": "application/sdp"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(ServerSettings(port=0, max_viewers=1, max_body_bytes=8192), StreamHub(max_viewers=1)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def secured() -> Iterator[ServerThread]:
    srv = ServerThread(ServerSettings(port=0, token=TOKEN), StreamHub()).start()
    yield srv
    srv.stop()


def test_pages_are_served(server: ServerThread) -> None:
    for path, needle in (("/", "prompt-form"), ("/view", "view.js"), ("/static/app.js", "postOffer"),
                         ("/static/common.js", "PROBE_POINTS"), ("/static/style.css", "#overlay")):
        status, body, _ = http("GET", server.url + path)
        assert status == 200 and needle in body, path


def test_bad_requests_get_400_with_a_reason(server: ServerThread) -> None:
    status, body, _ = http("POST", server.url + "/offer", "{not json", JSON)
    assert status == 400 and body["error"].startswith("malformed JSON")
    status, body, _ = http("POST", server.url + "/offer", "[1]", JSON)
    assert status == 400 and "expected an object" in body["error"]
    status, body, _ = http("POST", server.url + "/offer", json.dumps({"type": "offer", "sdp": "v=0\r\n"}), JSON)
    assert status == 400 and "no video m-line" in body["error"]
    status, body, _ = http("POST", server.url + "/offer", json.dumps({"sdp": 3}), JSON)
    assert status == 400 and '"type": "offer"' in body["error"]
    status, body, _ = http("POST", server.url + "/whip", "garbage", SDP)
    assert status == 400 and "must start with 'v=0'" in body["error"]
    status, body, _ = http("POST", server.url + "/whip", "v=0", {"Content-Type": "text/plain"})
    assert status == 415 and "application/sdp" in body["error"]
    status, body, _ = http("POST", server.url + "/offer", "x" * 20000, JSON)
    assert status == 413 and "too large" in body["error"]
    status, body, _ = http("DELETE", server.url + "/whip/nope")
    assert status == 404
    status, body, _ = http("PATCH", server.url + "/whep/nope", "x", {"Content-Type": "application/trickle-ice-sdpfrag"})
    assert status == 405 and "trickle" in body["error"]


def test_cross_origin_requests_are_refused_and_no_cors_headers_sent(server: ServerThread) -> None:
    status, body, headers = http("POST", server.url + "/offer", "{}", {**JSON, "Origin": "https://evil.example"})
    assert status == 403 and "cross-origin" in body["error"]
    status, _, headers = http("GET", server.url + "/sessions", headers={"Origin": server.url})
    assert status == 200 and not any(k.lower().startswith("access-control") for k in headers)


def test_viewer_without_the_output_codec_is_refused(server: ServerThread) -> None:
    status, body, _ = http("POST", server.url + "/whep", _offer("recvonly", audio=False, only_codec="video/H264"), SDP)
    assert status == 400 and "sends VP8 video" in body["error"], body


def test_whip_offer_that_does_not_send_is_refused(server: ServerThread, offers: dict[str, str]) -> None:
    status, body, _ = http("POST", server.url + "/whip", offers["recvonly"], SDP)
    assert status == 400 and "must send video" in body["error"]


def test_page_session_answer_delete_and_viewer_limit(server: ServerThread, offers: dict[str, str]) -> None:
    status, body, _ = http("POST", server.url + "/offer", json.dumps({"type": "offer", "sdp": offers["sendrecv"]}), JSON)
    assert status == 200 and body["type"] == "answer" and body["role"] == "publisher"
    assert "a=fingerprint" in body["sdp"] and "VP8" in body["sdp"]
    sid = body["session"]
    status, first, headers = http("POST", server.url + "/whep", offers["recvonly"], SDP)
    assert status == 201 and headers["Location"].startswith("/whep/") and first.startswith("v=0")
    status, body, _ = http("POST", server.url + "/whep", offers["recvonly"], SDP)
    assert status == 503 and "viewers already connected" in body["error"]
    assert http("GET", server.url + "/sessions")[1]["viewers"] == 1
    assert http("DELETE", server.url + headers["Location"])[0] == 200
    assert http("DELETE", server.url + f"/session/{sid}")[0] == 200
    counts = http("GET", server.url + "/sessions")[1]
    assert counts["publishers"] == 0 and counts["viewers"] == 0


def test_token_is_required_on_every_route_that_publishes_views_or_changes(secured: ServerThread,
                                                                          offers: dict[str, str]) -> None:
    for method, path, body, headers in (
        ("POST", "/offer", json.dumps({"type": "offer", "sdp": offers["sendrecv"]}), JSON),
        ("POST", "/whip", offers["sendonly"], SDP),
        ("POST", "/whep", offers["recvonly"], SDP),
        ("DELETE", "/whip/x", None, {}),
        ("DELETE", "/session/x", None, {}),
        ("GET", "/sessions", None, {}),
    ):
        status, reply, _ = http(method, secured.url + path, body, headers)
        assert status == 401 and "token" in reply["error"], path
        status, _, _ = http(method, secured.url + path, body, {**headers, "Authorization": "Bearer wrong-token-xyz"})
        assert status == 401, path
    assert http("GET", secured.url + "/")[0] == 200  # the page itself holds nothing
    status, _, headers = http("POST", secured.url + "/whip", offers["sendonly"], {**SDP, "Authorization": f"Bearer {TOKEN}"})
    assert status == 201
    assert http("DELETE", secured.url + headers["Location"] + f"?token={TOKEN}")[0] == 200


def test_settings_require_a_token_beyond_loopback() -> None:
    assert ServerSettings().resolved().token is None
    generated = ServerSettings(host="0.0.0.0").resolved().token
    assert generated is not None and len(generated) >= 24
    assert ServerSettings(host="0.0.0.0", token="given-token-1").resolved().token == "given-token-1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(ServerError, match="server.codec 'av1' is not supported"):
        ServerSettings(codec="av1").resolved()
    with pytest.raises(ServerError, match="too short"):
        ServerSettings(token="abc").resolved()


def test_port_in_use_is_a_clear_error(server: ServerThread) -> None:
    with pytest.raises(ServerError, match="choose another --port"):
        ServerThread(ServerSettings(port=server.port), StreamHub()).start()


# ------------------------------------------------------------------ hub, source, sink, audio


def test_session_limits_give_409_and_503() -> None:
    hub = StreamHub(max_publishers=1, max_viewers=1)
    hub.add_publisher("a")
    with pytest.raises(SessionLimitError, match="max_publishers=1") as exc:
        hub.add_publisher("b")
    assert exc.value.status == 409
    hub.add_viewer("v")
    with pytest.raises(SessionLimitError) as exc:
        hub.add_viewer("w")
    assert exc.value.status == 503
    hub.remove_session("a")
    hub.add_publisher("b")
    assert hub.is_active_publisher("b")


def test_webrtc_source_converts_the_active_publishers_newest_frame() -> None:
    hub = StreamHub(max_publishers=2)
    hub.add_publisher("first")
    hub.add_publisher("second")
    source = WebRTCSource(hub, size=(64, 48), fps=30)
    info = source.open()
    assert (info.width, info.height) == (64, 48)
    for value in (10, 200):
        img = np.full((96, 128, 3), value, np.uint8)
        hub.put_ingest("first", av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p"), time.monotonic())
    hub.put_ingest("second", av.VideoFrame.from_ndarray(np.zeros((96, 128, 3), np.uint8), format="rgb24"), 0.0)
    frames = source.frames()
    frame = next(frames)
    assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
    assert abs(int(frame.image.mean()) - 200) <= 3  # newest wins; the standby publisher is ignored
    assert hub.ingest.dropped == 1
    source.close()
    assert list(frames) == []
    with pytest.raises(SourceError, match="positive and even"):
        WebRTCSource(hub, size=(63, 48), fps=30)
    with pytest.raises(SourceError, match="not a WebRTC source"):
        open_webrtc_source("rtmp://x", start_server=False)
    with pytest.raises(SinkError, match="not a WebRTC sink"):
        open_webrtc_sink("out.mp4", fps=30, start_server=False)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_packet_encoder_keyframes_and_bitrate(codec: str) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(4)]

    def total_bytes(bitrate: int) -> tuple[int, list[bool], list[Any]]:
        enc = PacketEncoder(codec, bitrate, 30, keyframe_interval_s=10)
        sizes, keys, packets = 0, [], []
        for i in range(40):
            for p in enc.encode(images[i % 4], i * 3000, keyframe=(i == 20)):
                sizes += p.size
                keys.append(bool(p.is_keyframe))
                packets.append(p)
        return sizes, keys, packets

    low, keys, packets = total_bytes(150_000)
    high, _, _ = total_bytes(3_000_000)
    assert keys[0] and keys[20] and not any(keys[1:20]) and sum(keys) == 2
    assert high > 2 * low, (low, high)  # the configured bitrate governs the size
    assert all(p.time_base == Fraction(1, 90000) for p in packets) and packets[5].pts == 15000
    decoder = av.CodecContext.create("libvpx" if codec == "vp8" else "h264", "r")
    decoded = [f for p in packets[:3] for f in decoder.decode(p)]
    assert decoded and (decoded[0].width, decoded[0].height) == (128, 96)


def test_sink_encodes_only_while_someone_watches() -> None:
    async def main() -> tuple[int, int, list[Any]]:
        hub = StreamHub()
        hub.attach_loop(asyncio.get_running_loop())
        sink = WebRTCSink(hub, fps=30)
        sink.open(StreamInfo(64, 48, 30))
        frame = Frame(np.zeros((48, 64, 3), np.uint8), 0, Fraction(1, 90000), time.monotonic() - 0.05)
        sink.write(frame)  # nobody watches
        sub = hub.video_out.subscribe()  # type: ignore[union-attr]
        hub.request_keyframe()
        await asyncio.to_thread(sink.write, frame)
        item = await asyncio.wait_for(sub.next(), 5)
        return sink.frames_unwatched, sink.frames_encoded, [item, hub.video_delay]

    unwatched, encoded, (item, delay) = asyncio.run(main())
    assert unwatched == 1 and encoded == 1
    assert item.keyframe and (item.width, item.height) == (64, 48)
    assert delay >= 0.05  # measured from the frame's capture time


def test_audio_is_held_for_the_measured_video_delay() -> None:
    async def main() -> tuple[float, Any, Any]:
        hub = StreamHub()
        hub.add_publisher("p")
        now = time.monotonic()
        hub.record_delay(now - 0.25, now)  # video takes 250 ms from arrival to output
        track = DelayedAudioTrack(hub)
        audio = av.AudioFrame(format="s16", layout="mono", samples=960)
        arrival = time.monotonic()
        hub.put_audio("p", audio, arrival)
        got = await track.recv()
        waited = time.monotonic() - arrival
        hub.put_audio("someone-else", audio, arrival)  # not the active publisher: ignored
        track.stop()
        return waited, got, audio

    waited, got, sent = asyncio.run(main())
    assert got is sent
    assert waited >= 0.2, waited
