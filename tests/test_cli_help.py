"""Every verb's ``--help`` reads as written in an 80-column terminal: no Python type hints, no
eaten ``<placeholders>``, no line over 80 columns, and every example a whole command that runs as
printed (continuation lines joined)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from livestyle.cli.help_text import wrap_command

VERBS = ["run", "serve", "demo", "doctor", "bench", "budget", "weights", "weights pull", "weights list",
         "weights verify", "weights path"]


def _help(verb: str) -> str:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "livestyle", *verb.split(), "--help"], capture_output=True,
                         text=True, env=env, timeout=60, check=True)
    return out.stdout


def _examples(text: str) -> list[str]:
    """The example commands: the indented ``livestyle ...`` lines, continuations joined."""
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    joining = False
    for line in lines:
        if joining:
            out[-1] = out[-1][:-1].rstrip() + " " + line
        elif line.startswith("livestyle ") and "Usage" not in line:
            out.append(line)
        joining = bool(out) and out[-1].endswith("\\")
    return out


@pytest.mark.parametrize("verb", VERBS)
def test_help_reads_as_written_at_80_columns(verb: str) -> None:
    text = _help(verb)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert not re.search(r"<(bool|str|int|float|list\[|Path)", text), text
    assert "//)" not in text and "DIR//" not in text  # a <placeholder> eaten by the markdown renderer


@pytest.mark.parametrize("verb", ["run", "serve", "bench", "budget", "weights"])
def test_every_example_is_a_whole_command_of_its_verb(verb: str) -> None:
    examples = _examples(_help(verb))
    assert len(examples) >= 3
    for command in examples:
        words = shlex.split(command, comments=True)
        assert words[:2] == ["livestyle", verb.split()[0]], command
        assert all(not w.endswith("\\") for w in words), command
        assert not any(w.startswith("--") and w.endswith("-") for w in words), command  # not cut mid-option


def test_long_commands_wrap_at_option_boundaries_and_keep_quotes_together() -> None:
    cmd = ('livestyle run --source webcam --sink virtualcam --prompt "a spaceship interior at night" '
           "--effect background --mask person --mask-preview")
    text = wrap_command(cmd, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[0].endswith(" \\") and all(line.startswith("    --") for line in lines[1:])
    assert '--prompt "a spaceship interior at night"' in text
    assert " ".join(w for w in text.replace("\\\n", " ").split()) == " ".join(cmd.split())


@pytest.mark.parametrize("verb", VERBS)
def test_no_example_overwrites_a_shipped_file(verb: str) -> None:
    """Issue 27, point 12: `bench --help` showed `--write-profile configs/gpus/h100.yaml`, which run
    as printed merges one machine's timings into the shipped H100 profile every plan is derived from."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for line in _examples(_help(verb)):
        words = shlex.split(line.split("  #")[0])
        for option, value in zip(words, words[1:]):
            if option in ("--write-profile", "--out", "--sink", "-o"):
                assert not (root / value).exists(), f"{line!r} would overwrite the shipped {value}"
