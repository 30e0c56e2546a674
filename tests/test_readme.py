"""The README as a product page (issue 13): set-up first, what you need, a quick start, recipes,
troubleshooting, licences; every example uses real verbs and options; no slow CPU example."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from livestyle.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def commands_in(text: str) -> list[str]:
    """Every `livestyle ...` command line in fenced blocks and inline code (continuations joined)."""
    found = []
    for lang, block in re.findall(r"```(\w*)\n(.*?)```", text, re.DOTALL):
        if lang not in ("", "bash"):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line.startswith(("livestyle ", ".venv/bin/livestyle ")):
                found.append(line)
    found += [c for c in re.findall(r"`((?:\.venv/bin/)?livestyle [^`]+)`", text)]
    return found


def test_the_two_set_up_commands_come_first() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    assert blocks[0].strip() == "bash scripts/setup.sh && .venv/bin/livestyle demo"
    assert blocks[1].strip() == "bash scripts/setup.sh --dev && .venv/bin/python -m pytest -n 2"


def test_product_sections_come_before_the_reference() -> None:
    heads = re.findall(r"^## (.+)$", README, re.MULTILINE)
    order = ["Set up and run", "What you need", "Quick start with a GPU", "Troubleshooting", "Licences", "Commands"]
    assert [h for h in heads if h in order] == order, heads
    needs = README.split("## What you need")[1].split("## Quick start")[0]
    for word in ("OS", "Python", "GPU memory, 1.3B", "GPU memory, 14B", "disk"):
        assert word in needs, word
    quick = README.split("## Quick start with a GPU")[1].split("## Troubleshooting")[0]
    for step in ("weights pull", "livestyle budget", "--model sdv2-1.3b", "warming up", "### Recipes", "OBS", "Video calls"):
        assert step in quick, step
    assert "LIVESTYLE_LOG" in README and "LIVESTYLE_CACHE_DIR" in README


def test_internals_moved_to_docs_and_every_local_link_exists() -> None:
    assert (ROOT / "docs/benchmarks.md").is_file()
    assert "python benchmarks/gpu_suite.py" not in README  # benchmark internals live in docs/benchmarks.md
    for target in re.findall(r"\]\(((?:docs|configs|obs)/[^)#]+)\)", README):
        assert (ROOT / target).exists(), target
    assert "docs/images/page-1280x720.png" in README and "docs/images/background_blur.jpg" in README


def _options(command: typer.core.TyperCommand) -> set[str]:  # type: ignore[name-defined]
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("line", commands_in(README))
def test_every_readme_example_uses_real_verbs_and_options(line: str) -> None:
    group = typer.main.get_command(app)
    argv = shlex.split(line)[1:]
    verb = argv[0]
    assert verb in group.commands, f"unknown verb in {line!r}"
    command = group.commands[verb]
    sub = getattr(command, "commands", None)
    if sub and len(argv) > 1:  # `livestyle weights pull ...`
        if argv[1] not in sub:
            pytest.fail(f"unknown sub-command in {line!r}")
        command = sub[argv[1]]
    known = _options(command) | {"--help", "-h"}
    for word in argv:
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            assert word.split("=")[0] in known, f"{word} is not an option of `livestyle {verb}` ({line!r})"


def test_cpu_examples_are_quick_and_gpu_ones_are_marked() -> None:
    """A `bench` example either is the ~5 s CPU form or says GPU only (the old CPU example ran >5 min)."""
    for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL):
        for line in block.splitlines():
            if line.startswith("livestyle bench"):
                quick = all(f in line for f in ("--device cpu", "--vae tiny", "--glass-seconds 0", "--size 64x48"))
                assert quick or "GPU only" in line, line


# ------------------------------------------------------------------ curl lines against a live server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _live(argv: list[str], port: int, token: str | None) -> Iterator[str]:
    """``livestyle ARGV`` as a subprocess, yielded once its ``/api/params`` answers; stopped after."""
    proc = subprocess.Popen([sys.executable, "-m", "livestyle", *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        for _ in range(600):  # a bound on the wait for start-up, not a timing assertion
            if proc.poll() is not None:
                pytest.fail(f"livestyle {' '.join(argv)} exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{url}/api/params", headers=headers), timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"livestyle {' '.join(argv)} never answered on {url}")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_curl_lines(lines: list[str], prelude: str) -> None:
    """Each line through bash as printed; ``curl`` is wrapped only to fail on an HTTP error status."""
    wrapper = 'curl() { command curl -sS --fail-with-body "$@"; }\n'
    for line in lines:
        done = subprocess.run(["bash", "-c", wrapper + prelude + line], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line!r} failed: {done.stdout}{done.stderr}"
        json.loads(done.stdout)  # every API answer is JSON


def _bash_blocks_with_curl() -> list[str]:
    return [b for b in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) if "\ncurl " in "\n" + b]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_readme_curl_line_works_as_printed_against_a_live_server() -> None:
    """Issue 27, point 1: the control API's curl lines (POST and PATCH with JSON bodies included) run
    as printed against `livestyle serve` with a token, and `run --api`'s line against `run --api`."""
    blocks = _bash_blocks_with_curl()
    api_block = next(b for b in blocks if "TOKEN=..." in b)
    setup = [ln for ln in api_block.splitlines() if ln and not ln.startswith("curl ")]
    curls = [ln for ln in api_block.splitlines() if ln.startswith("curl ")]
    assert any("-X POST" in c and " -d " in c for c in curls) and any("-X PATCH" in c for c in curls)
    token, port = "readme-token-0123456789", _free_port()
    with _live(["serve", "--port", str(port), "--token", token, "--model", "passthrough"], port, token) as url:
        prelude = "\n".join(setup).replace("http://127.0.0.1:8080", url).replace("TOKEN=...", f"TOKEN={token}") + "\n"
        _run_curl_lines(curls, prelude)
    others = [ln.split(" # ")[0].strip() for b in blocks if b is not api_block for ln in b.splitlines() if ln.startswith("curl ")]
    assert others, "the `run --api` example has a curl line"
    port = _free_port()
    with _live(["run", "--source", "pattern", "--sink", "null", "--size", "64x48", "--model", "passthrough",
                "--api", "--api-port", str(port), "--no-keys", "--quiet"], port, None) as url:
        _run_curl_lines([ln.replace("http://127.0.0.1:8080", url) for ln in others], "")


def _readme_errors() -> list[tuple[int, str]]:
    """The control API's documented error answers: ``(status, error text)``; ``...`` ends a prefix."""
    found = re.findall(r'`(\d{3}) \{"error": "((?:[^"\\]|\\.)*)"', README)
    return [(int(code), text) for code, text in found]


def test_the_readme_error_texts_are_the_servers() -> None:
    """Issue 27, point 12: the README quoted `got 2` where the server said `got 2.0`; each documented
    error is sent to a live server and its answer compared with the README's text."""
    requests = {  # the request each documented error comes from
        "strength must be": ("PATCH", "/api/params", b'{"strength": 2}'),
        "malformed JSON": ("PATCH", "/api/params", b'{"strength": '),
        "unknown preset": ("POST", "/api/presets/vaporwave", b""),
    }
    errors = _readme_errors()
    assert len(errors) == len(requests), errors
    token, port = "readme-token-0123456789", _free_port()
    with _live(["serve", "--port", str(port), "--token", token, "--model", "passthrough"], port, token) as url:
        for status, text in errors:
            method, path, body = next(v for k, v in requests.items() if text.startswith(k))
            req = urllib.request.Request(url + path, data=body or None, method=method, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(req, timeout=10)
            answer = json.loads(caught.value.read())["error"]
            assert caught.value.code == status, (text, answer)
            if text.endswith("..."):
                assert answer.startswith(text[:-3]), (text, answer)
            else:
                assert answer == text


def _recipes(text: str) -> list[str]:
    """Each recipe of the README: a list item (with its continuation lines), or a run of lines in a
    shell block that a ``# comment`` line starts."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        group: list[str] = []
        for line in block.splitlines():
            if line.startswith("#") and group:
                out.append("\n".join(group))
                group = []
            group.append(line)
        out.append("\n".join(group))
    out += re.findall(r"^- .*(?:\n  .*)*", text, re.MULTILINE)
    return out


def test_every_selfie_mask_recipe_pulls_its_files_first() -> None:
    """Issue 27, point 8: the no-GPU blur recipe stopped on a fresh install with `model
    'mediapipe-selfie' is missing`; a recipe whose run uses the person mask pulls it before."""
    needing = 0
    for recipe in _recipes(README):
        for run in re.finditer(r"livestyle (?:run|serve) [^`\n]*--mask (?:person|selfie)(?![-\w])", recipe):
            needing += 1
            assert "livestyle weights pull mediapipe-selfie" in recipe[: run.start()], recipe
    assert needing >= 3  # the video-call recipes, with and without a GPU
    quick = README.split("### Recipes")[1].split("## Troubleshooting")[0]
    assert "--model passthrough --effect background --mask person --set effects.fill=blur" in quick


def _predicted_row(gpu: str) -> str:
    """The README's predicted-fps row for ``gpu``, from `livestyle budget` as the README says."""
    done = subprocess.run([sys.executable, "-m", "livestyle", "budget", "--gpu", gpu, "--fps", "30", "--latency-ms", "400",
                           "--all-models", "--json"], capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        d = json.loads(done.stdout)
        steps = f"{d['steps']} step{'s' if d['steps'] > 1 else ''}"
        return f"| `{gpu}` | `{d['model']}` {d['size']}, {steps}, `{d['decoder']}` | {d['fps']:.1f} |"
    m = re.search(r"the fastest setting \((\S+) (\S+) (\d+) steps?, (.+?)\) reaches ([\d.]+) fps", done.stderr)
    assert m, done.stderr
    return f"| `{gpu}` | 30 fps not reached; fastest: `{m[1]}` {m[2]}, {m[3]} step, {m[4]} | {float(m[5]):.1f} |"


def test_the_predicted_fps_table_is_what_budget_predicts() -> None:
    """Issue 27, point 7: the README says what a consumer card gets (the RTX 3060 12 GB it calls the
    smallest card planned for: 11.8 fps), marked as predictions; each row is recomputed here."""
    table = README.split("<!-- predicted-fps table")[1].split("\n\n")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| `")]
    assert len(rows) >= 8 and "predictions, not measurements" in README
    shipped = {p.stem for p in (ROOT / "configs/gpus").glob("*.yaml")}
    for line in rows:
        gpu = line.split("`")[1]
        assert gpu in shipped, gpu
        assert line == _predicted_row(gpu), f"README row out of date: {line!r}; budget now says {_predicted_row(gpu)!r}"


def test_windows_and_macos_say_what_works_and_what_is_untested() -> None:
    """Issue 27, point 6 (README part): a section per system's facts, marked untested, whose
    PowerShell lines name real verbs through the Windows venv's paths."""
    section = README.split("### Windows and macOS")[1].split("\n## ")[0]
    assert "Neither is tested" in section
    for row in ("set-up", "styling (a model)", "`--sink window`", "`--sink virtualcam`", "terminal keys"):
        assert f"| {row} |" in section, row
    block = re.findall(r"```powershell\n(.*?)```", section, re.DOTALL)[0]
    lines = block.strip().splitlines()
    assert lines[0].startswith("py -3 -m venv .venv")
    group = typer.main.get_command(app)
    for line in lines[1:]:
        assert line.startswith(".venv\\Scripts\\"), line  # never .venv/bin on Windows
        if line.startswith(".venv\\Scripts\\livestyle "):
            assert line.split()[1] in group.commands, line
