"""SignalWatch: which stop signal arrived (exit 128 + N), SIGHUP routed to a run's SIGTERM handler."""

from __future__ import annotations

import os
import signal

import pytest

from livestyle.cli import main
from livestyle.cli.signals import SignalWatch, Terminated, signal_exit_code


def test_sigterm_outside_a_run_raises_terminated_and_is_recorded() -> None:
    with SignalWatch() as watch, pytest.raises(Terminated) as err:
        os.kill(os.getpid(), signal.SIGTERM)
    assert err.value.signum == signal.SIGTERM
    assert watch.first() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_sighup_during_a_run_calls_the_runs_sigterm_handler() -> None:
    calls: list[int] = []
    with SignalWatch() as watch:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))  # what Runner.run does
        try:
            os.kill(os.getpid(), signal.SIGHUP)
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert calls == [signal.SIGTERM]
        assert watch.received() == [signal.SIGHUP]


def test_exit_codes_are_128_plus_the_signal() -> None:
    assert [signal_exit_code(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == [130, 143, 129]


def test_a_signal_before_the_run_gives_its_code(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """SIGTERM while the sinks open (start-up): no traceback, 143."""
    import livestyle.output as output

    real = output.open_sink

    def open_then_signal(spec: str, **kw):  # the signal lands while start-up is under way
        os.kill(os.getpid(), signal.SIGTERM)
        return real(spec, **kw)

    output.open_sink = open_then_signal
    try:
        code = main(["run", "--source", "pattern", "--sink", str(tmp_path / "x.mp4"), "--model", "passthrough",
                     "--size", "64x64", "-q", "--no-keys", "--max-frames", "5"])
    finally:
        output.open_sink = real
    assert code == 143
    assert "stopped by SIGTERM" in capsys.readouterr().err
