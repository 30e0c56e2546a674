"""What live commands change in a running stream, applied between chunks on the worker thread.

:class:`LiveSettings` holds the runner's own settings (bypass and who turned it on, the
generator's working size) and applies each command the worker takes from the
:class:`~livestyle.engine.channels.Inbox`: ``Stop`` and ``SetBypass`` itself, everything else
through ``generator.apply``. It also shows the :class:`~livestyle.engine.governor.Governor`
each chunk and applies its decisions the same way. Nothing a command does can end the stream: a
refused or failing command is counted in ``command_errors`` with its reason, and the stream goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from livestyle.errors import LivestyleError, one_line
from livestyle.engine.channels import Inbox
from livestyle.engine.commands import SetBypass, SetDecoder, SetSize, SetSteps, Stop
from livestyle.engine.delivery import DeliveryScheduler
from livestyle.engine.frames import Generator
from livestyle.engine.governor import Governor, Observation, level_from_stats

__all__ = ["LiveSettings"]

log = logging.getLogger(__name__)


class LiveSettings:
    """The live settings of one run (module docstring).

    Args:
        generator: receives every command but ``Stop`` and ``SetBypass``.
        size: the generator's working size at the start (``SetSize`` changes it).
        fps: the nominal frame rate (the governor's chunk budget).
        clock: the run's clock.
        governor: None: settings stay as the streamer sets them.
        delivery, inbox: what the governor reads as latency (the offset D) and backlog.
        on_stop: called for a ``Stop`` command.
    """

    def __init__(
        self,
        generator: Generator,
        *,
        size: tuple[int, int],
        fps: float,
        clock: Callable[[], float],
        governor: Governor | None,
        delivery: DeliveryScheduler,
        inbox: Inbox,
        on_stop: Callable[[], None],
    ) -> None:
        self._generator = generator
        self._fps = fps
        self._clock = clock
        self._governor = governor
        self._delivery = delivery
        self._inbox = inbox
        self._on_stop = on_stop
        self._lock = threading.Lock()
        self.work_size = size
        """The generator's working size; frames are resized to it and back."""
        self._bypass = False
        self._bypass_by_governor = False
        self._governor_retop = True  # (re)build the ladder from the generator's settings at the next chunk
        self._applied = 0
        self._errors = 0
        self._last_error: str | None = None

    @property
    def bypass(self) -> bool:
        with self._lock:
            return self._bypass

    @property
    def bypass_by_governor(self) -> bool:
        """Bypass is on because the governor put it there (its lowest rung), not the streamer."""
        return self._bypass_by_governor

    def stats(self) -> dict[str, Any]:
        """``bypass``, ``work_size``, ``commands_applied``, ``command_errors``, ``last_command_error``."""
        with self._lock:
            return {
                "bypass": self._bypass,
                "work_size": list(self.work_size),
                "commands_applied": self._applied,
                "command_errors": self._errors,
                "last_command_error": self._last_error,
            }

    def govern(self, chunk_ms: float, frames: int) -> None:
        """Show the governor one chunk (or bypassed frames at its bypass rung); apply its decision."""
        gov = self._governor
        if gov is None:
            return
        if self._governor_retop:
            self._governor_retop = False
            try:
                gov.retop(level_from_stats(self._generator.stats()))
            except Exception as exc:  # noqa: BLE001 - stats are advisory; the stream goes on ungoverned
                log.warning("governor off: the generator's settings are unreadable (%s)", exc)
                gov.retop(None)
        with self._lock:
            if self._bypass and not self._bypass_by_governor:
                return  # the streamer's own bypass (the panic button): hands off
        offset = self._delivery.offset
        obs = Observation(chunk_ms=chunk_ms, latency_ms=None if offset is None else 1000.0 * offset,
                          backlog=max(0, len(self._inbox) - frames), now=self._clock())
        budget = 1000.0 * max(1, int(self._generator.frames_needed())) / self._fps
        decision = gov.observe(obs, chunk_budget_ms=budget)
        if decision is None:
            return
        log.warning("governor: %s -> %s (%s)", decision.before.describe(), decision.after.describe(), decision.reason)
        for command in decision.commands:
            self.apply(command, by_governor=True)

    def apply(self, command: object, *, by_governor: bool = False) -> None:
        """Apply one command between chunks (module docstring). A streamer's own change of steps,
        decoder, size or bypass resets the governor's ladder to the new settings (``by_governor``:
        the change is the governor's)."""
        with self._lock:
            self._applied += 1
        if isinstance(command, Stop):
            self._on_stop()
            return
        if isinstance(command, SetBypass):
            with self._lock:
                on = (not self._bypass) if command.value is None else bool(command.value)
                if not by_governor and self._bypass_by_governor and on:
                    on = True  # the streamer confirms bypass: it is theirs now
                self._bypass = on
                self._bypass_by_governor = on and by_governor
            if not by_governor:
                self._governor_retop = True
            log.info("bypass %s%s", "on" if on else "off", " (governor)" if by_governor else "")
            return
        if not by_governor and isinstance(command, (SetSteps, SetDecoder, SetSize)):
            self._governor_retop = True
        if isinstance(command, SetSize):
            size = (int(command.width), int(command.height))
            if size[0] % 16 or size[1] % 16 or min(size) < 16:
                self._failed(f"SetSize {size[0]}x{size[1]}: sides must be positive multiples of 16")
                return
        try:
            self._generator.apply(command)
        except LivestyleError as exc:
            self._failed(f"{type(command).__name__}: {exc}")
            return
        except Exception as exc:
            log.exception("applying %s failed", type(command).__name__)
            self._failed(f"{type(command).__name__}: {one_line(exc)}")
            return
        if isinstance(command, SetSize):
            self.work_size = (int(command.width), int(command.height))

    def _failed(self, message: str) -> None:
        log.warning("command not applied: %s", message)
        with self._lock:
            self._errors += 1
            self._last_error = message
