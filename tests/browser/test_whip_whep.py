"""WHIP in, WHEP out, over real aiortc peers inside a network namespace (no browser needed)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from netns import NetnsRunner
from stack import InvertGenerator, Stack
from webrtc_clients import COLOUR, invert, whep_play, whip_publish

from livestyle.server.app import ServerSettings


def _publish_and_play(stack: Stack, token: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        pub = asyncio.ensure_future(whip_publish(stack.url, token=token, seconds=4.0))
        await asyncio.sleep(0.5)
        play = await whep_play(stack.url, token=token, seconds=3.0)
        return await pub, play

    return asyncio.run(both())


def test_whip_in_whep_out_through_the_pipeline(netns: NetnsRunner) -> None:
    def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        stack = Stack(InvertGenerator(), ServerSettings(port=0, codec="vp8", bitrate=800_000))
        try:
            pub, play = _publish_and_play(stack)
            return pub, play, stack.server.hub.stats()
        finally:
            stack.close()

    pub, play, stats = netns.run(scenario)
    assert pub["status"] == 201 and pub["location"].startswith("/whip/"), pub
    assert play["status"] == 201 and play["location"].startswith("/whep/"), play
    assert play["delete_status"] == 200
    assert play["video"] >= 30, play["video"]  # ~90 expected in 3 s; a stall fails
    assert play["audio"] >= 20, play["audio"]  # the publisher's tone passes through
    assert play["sizes"] == {(320, 240)}
    mean = np.mean(play["colours"][-10:], axis=0)
    assert np.abs(mean - np.array(invert(COLOUR))).max() < 12, (mean, invert(COLOUR))
    assert stats["delay_ms"] > 0 and stats["frames_out"] > 0


def test_second_publisher_is_refused_and_a_deleted_session_frees_its_slot(netns: NetnsRunner) -> None:
    async def flow(url: str) -> list[dict[str, Any]]:
        first = asyncio.ensure_future(whip_publish(url, seconds=1.5, audio=False))
        await asyncio.sleep(0.5)
        second = await whip_publish(url, seconds=0.1, audio=False)
        await first  # closes its peer connection; the server sees it close
        return [await first, second]

    def scenario() -> tuple[list[dict[str, Any]], int]:
        stack = Stack(InvertGenerator(), ServerSettings(port=0, max_publishers=1))
        try:
            results = asyncio.run(flow(stack.url))
            # the first publisher's DELETE-less close: free it explicitly like OBS's "Stop Streaming"
            async def delete(location: str) -> int:
                import aiohttp

                async with aiohttp.ClientSession() as s, s.delete(stack.url + location) as r:
                    return r.status

            status = asyncio.run(delete(results[0]["location"]))
            third = asyncio.run(whip_publish(stack.url, seconds=0.1, audio=False))
            results.append(third)
            return results, status
        finally:
            stack.close()

    (first, second, third), delete_status = netns.run(scenario)
    assert first["status"] == 201
    assert second["status"] == 409 and "max_publishers=1" in second["body"], second
    assert delete_status in (200, 404)  # 404 when the closed peer connection already freed it
    assert third["status"] == 201, third
