"""Model registry and `livestyle weights`: resolution order, pulls through a local fake Hub endpoint
(aiohttp serving the Hub's resolve/API URLs, HF_ENDPOINT pointed at it), offline mode, no network,
disk space, verification, the generated tiny model, and every error message."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from livestyle.errors import WeightsError
from livestyle.models.weights import get_model, list_models, locate, resolve
from livestyle.models.weights_verify import verify

REAL_MODELS = {"sdv2-1.3b", "sdv2-14b", "self-forcing-1.3b", "krea-14b", "longlive-1.3b", "tiny"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# -- the registry ---------------------------------------------------------------------------------


def test_registry_lists_every_model_with_valid_pipeline_settings() -> None:
    from livestyle.diffusion.family import family_from_mapping

    models = {m.name: m for m in list_models()}
    assert REAL_MODELS <= set(models)
    for name in REAL_MODELS:
        m = models[name]
        assert {"dit", "vae", "text_encoder", "tokenizer"} <= set(m.files), name
        assert m.files["tokenizer"].is_folder and m.dit in {"1.3b", "14b", "tiny"}
        family_from_mapping(m.pipeline, source=str(m.source))  # the pipeline reads this mapping as-is
    assert models["longlive-1.3b"].files["lora"].file == "models/lora.pt"
    assert models["sdv2-1.3b"].files["dit"].repo == "jerryfeng/StreamDiffusionV2"
    assert models["sdv2-1.3b"].pipeline["latents"] == "raw"
    assert models["sdv2-1.3b"].files["taehv"].optional


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(WeightsError, match=r"unknown model 'sdv3'; known models: .*krea-14b.*sdv2-1.3b.*tiny"):
        get_model("sdv3")
    with pytest.raises(WeightsError, match=r"model 'tiny' has no 'unet' file; it has: dit, vae"):
        resolve("tiny", "unet")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"vae": {"repo": "a/b", "file": "x", "folder": "y"}}, "needs exactly one of 'file' or 'folder'"),
        ({"vae": {"file": "x"}}, "needs a 'repo'"),
        ({"vae": {"repo": "a/b", "file": "x", "sha": "1"}}, r"unknown keys \['sha'\]"),
        ({"vae": {"repo": "a/b", "file": "x", "size": "big"}}, "size must be a byte count or null"),
        ({"vae": {"repo": "a/b", "file": "x", "sha256": "abc"}}, "sha256 must be 64 hex digits"),
    ],
)
def test_bad_registry_entries(tmp_path: Path, entry: dict, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "bad", "files": entry}))
    with pytest.raises(WeightsError, match=message):
        get_model("bad", tmp_path)
    (tmp_path / "other.yaml").write_text("name: different\nfiles: {}\n")
    with pytest.raises(WeightsError, match="name 'different' must match the file name 'other'"):
        get_model("other", tmp_path)


# -- local resolution -----------------------------------------------------------------------------


def test_resolve_prefers_the_weights_dir_in_each_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(WeightsError) as err:
        resolve("sdv2-1.3b", "vae", weights_dir=tmp_path / "w")
    assert str(err.value) == (
        f"model 'sdv2-1.3b' is missing its vae file Wan-AI/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth (looked in "
        f"{tmp_path / 'w' / 'sdv2-1.3b' / 'Wan2.1_VAE.pth'} or the Hugging Face cache); run `livestyle weights pull "
        "sdv2-1.3b` or put the file at DIR/sdv2-1.3b/Wan2.1_VAE.pth and pass --weights-dir DIR"
    )
    layouts = [
        tmp_path / "w" / "Wan2.1_VAE.pth",
        tmp_path / "w" / "Wan-AI" / "Wan2.1-T2V-1.3B" / "Wan2.1_VAE.pth",
        tmp_path / "w" / "sdv2-1.3b" / "Wan2.1_VAE.pth",
    ]
    for path in layouts:  # each more specific layout wins over the previous one
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        assert resolve("sdv2-1.3b", "vae", weights_dir=tmp_path / "w") == path
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path / "w"))
    assert resolve("sdv2-1.3b", "vae") == layouts[-1]
    tok = tmp_path / "w" / "sdv2-1.3b" / "google" / "umt5-xxl"
    tok.mkdir(parents=True)
    assert locate(get_model("sdv2-1.3b"), "tokenizer")[0] is None  # an empty folder does not count
    (tok / "tokenizer.json").write_text("{}")
    assert resolve("sdv2-1.3b", "tokenizer") == tok


def test_tiny_model_is_generated_locally_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from livestyle.models.taehv import load_taehv
    from livestyle.models.text import PromptEncoder
    from livestyle.models.vae_loading import load_wan_vae
    from livestyle.models.weights_pull import pull

    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded
    with pytest.raises(WeightsError, match="run `livestyle weights pull tiny`"):
        resolve("tiny", "vae")
    seen: list[str] = []
    paths = pull("tiny", on_file=lambda spec, path, status: seen.append(f"{spec.role}:{status}"))
    assert sorted(seen) == sorted(f"{r}:generated" for r in ("dit", "vae", "text_encoder", "tokenizer", "taehv"))
    assert paths["vae"] == tmp_path / "cache" / "weights" / "tiny" / "Wan2.1_VAE.pth" == resolve("tiny", "vae")
    vae = load_wan_vae(paths["vae"])
    assert vae.encode(torch.zeros(1, 3, 1, 16, 16)).shape == (1, 16, 1, 2, 2)
    load_taehv(paths["taehv"])
    enc = PromptEncoder(paths["text_encoder"], paths["tokenizer"], cache_dir=None)
    assert enc.encode("hello").shape == (512, 32)
    assert all(r.ok for r in verify("tiny"))
    seen.clear()
    pull("tiny", on_file=lambda spec, path, status: seen.append(status))
    assert set(seen) == {"present"}


# -- a fake Hub endpoint --------------------------------------------------------------------------


class FakeHub:
    """Serves files under the Hub's URL scheme: HEAD/GET /{repo}/resolve/{rev}/{path} and the repo API."""

    def __init__(self, files: dict[str, dict[str, bytes]]) -> None:
        self.files = files
        self.requests: list[tuple[str, str, str | None]] = []
        self.cut_once: set[str] = set()  # paths whose first GET is cut off after 3/4 of the body
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FakeHub:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        from aiohttp import web

        async def resolve_file(request: web.Request) -> web.StreamResponse:
            repo = f"{request.match_info['org']}/{request.match_info['name']}"
            path = request.match_info["path"]
            self.requests.append((request.method, path, request.headers.get("Range")))
            data = self.files.get(repo, {}).get(path)
            if data is None:
                return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            headers = {"X-Repo-Commit": COMMIT, "ETag": etag, "Accept-Ranges": "bytes"}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(data))
                return web.Response(status=200, headers=headers)
            start = 0
            if request.headers.get("Range", "").startswith("bytes="):
                start = int(request.headers["Range"][6:].split("-")[0])
            body = data[start:]
            status = 206 if start else 200
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            headers["Content-Length"] = str(len(body))
            resp = web.StreamResponse(status=status, headers=headers)
            await resp.prepare(request)
            if path in self.cut_once:
                self.cut_once.discard(path)
                for i in range(0, 3 * len(body) // 4, 1 << 20):
                    await resp.write(body[i : i + (1 << 20)])
                    await asyncio.sleep(0.01)
                request.transport.close()  # type: ignore[union-attr]
                return resp
            await resp.write(body)
            await resp.write_eof()
            return resp

        async def repo_tree(request: web.Request) -> web.Response:
            repo = f"{request.match_info['org']}/{request.match_info['name']}"
            self.requests.append(("TREE", repo, None))
            entries = [
                {"type": "file", "path": p, "size": len(d), "oid": hashlib.sha1(d).hexdigest()} for p, d in self.files.get(repo, {}).items()
            ]
            return web.json_response(entries)

        async def repo_info(request: web.Request) -> web.Response:
            repo = f"{request.match_info['org']}/{request.match_info['name']}"
            self.requests.append(("API", repo, None))
            if repo not in self.files:
                return web.json_response({"error": "Repository not found"}, status=404, headers={"X-Error-Code": "RepoNotFound"})
            siblings = [{"rfilename": p, "size": len(d)} for p, d in self.files[repo].items()]
            return web.json_response({"id": repo, "sha": COMMIT, "siblings": siblings, "private": False})

        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("HEAD", "/{org}/{name}/resolve/{rev}/{path:.+}", resolve_file)
        app.router.add_route("GET", "/{org}/{name}/resolve/{rev}/{path:.+}", resolve_file)
        app.router.add_route("GET", "/api/models/{org}/{name}/revision/{rev}", repo_info)
        app.router.add_route("GET", "/api/models/{org}/{name}", repo_info)
        app.router.add_route("GET", "/api/models/{org}/{name}/tree/{rev}", repo_tree)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())


def _tiny_training_save() -> bytes:
    """A real tiny StreamDiffusionV2-layout save whose 16 MiB critic makes it larger than huggingface_hub's
    10 MiB download chunk, so a cut leaves a partial file; `weights verify` checks its structure."""
    import io

    import torch

    from livestyle.models.testing.dit import random_dit_state_dict

    buf = io.BytesIO()
    weights = {f"model.{k}": v for k, v in random_dit_state_dict("tiny", 0).items()}
    torch.save({"generator": weights, "critic": {"model.blob": torch.zeros(4 << 20)}}, buf)
    return buf.getvalue()


def _tiny_vae_pth() -> bytes:
    import io

    import torch

    from livestyle.models.testing.stack import random_wan_vae

    buf = io.BytesIO()
    torch.save(random_wan_vae("tiny").state_dict(), buf)
    return buf.getvalue()


BIG = _tiny_training_save()
SMALL = _tiny_vae_pth()


def _registry(folder: Path, *, dit_size: int | None = len(BIG), dit_sha: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "name": "fake",
        "title": "Fake model",
        "family": "sdv2",
        "dit": "tiny",
        "container": "generator",
        "files": {
            "dit": {"repo": "org/dit-repo", "file": "ckpt/model.pt", "size": dit_size, "sha256": dit_sha},
            "vae": {"repo": "org/base", "file": "Wan2.1_VAE.pth", "size": len(SMALL), "sha256": hashlib.sha256(SMALL).hexdigest()},
            "tokenizer": {"repo": "org/base", "folder": "google/umt5-xxl"},
        },
        "pipeline": {"family": "sdv2"},
    }
    (folder / "fake.yaml").write_text(yaml.safe_dump(entry))
    return folder


@pytest.fixture()
def hub() -> Iterator[FakeHub]:
    server = FakeHub(
        {
            "org/dit-repo": {"ckpt/model.pt": BIG},
            "org/base": {
                "Wan2.1_VAE.pth": SMALL,
                "google/umt5-xxl/tokenizer.json": b"{}",
                "google/umt5-xxl/spiece.model": b"spm",
                "config.json": b"{}",
            },
        }
    ).start()
    yield server
    server.stop()


def _cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LIVESTYLE_"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "livestyle", *args], check=False, capture_output=True, text=True, env=full, timeout=timeout)


def test_pull_from_a_fake_hub_then_path_and_verify(hub: FakeHub, tmp_path: Path) -> None:
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "LIVESTYLE_MODELS_DIR": str(_registry(tmp_path / "reg")),
        "HF_HUB_DISABLE_XET": "1",
    }
    hub.cut_once.add("ckpt/model.pt")  # the first download breaks off part-way
    first = _cli(["weights", "pull", "fake"], env)
    assert first.returncode == 0, first.stderr
    output = first.stderr
    ranged = [r for r in hub.requests if r[0] == "GET" and r[1] == "ckpt/model.pt" and r[2]]
    assert ranged and 0 < int(ranged[-1][2][6:-1]) <= 3 * len(BIG) // 4  # resumed where it broke off, not restarted
    assert "fake is ready" in output
    path = _cli(["weights", "path", "fake", "--role", "dit"], env)
    assert path.returncode == 0, path.stderr
    dit = Path(path.stdout.strip())
    assert dit.read_bytes() == BIG and str(tmp_path / "hf") in str(dit)
    listing = dict(line.split("\t") for line in _cli(["weights", "path", "fake"], env).stdout.splitlines())
    assert set(listing) == {"dit", "vae", "tokenizer"} and listing["dit"] == str(dit)
    assert listing["tokenizer"].endswith("google/umt5-xxl") and (Path(listing["tokenizer"]) / "spiece.model").read_bytes() == b"spm"
    ok = _cli(["weights", "verify", "fake"], env)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    again = _cli(["weights", "pull", "fake"], env)
    assert again.returncode == 0 and again.stderr.count("present") == 3
    # offline afterwards: everything resolves from the cache without a server
    offline = _cli(["weights", "path", "fake", "--role", "vae"], {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert offline.returncode == 0 and Path(offline.stdout.strip()).read_bytes() == SMALL


def test_pull_into_a_weights_dir_and_verify_catches_bad_files(hub: FakeHub, tmp_path: Path) -> None:
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "LIVESTYLE_MODELS_DIR": str(_registry(tmp_path / "reg", dit_sha=hashlib.sha256(BIG).hexdigest())),
        "HF_HUB_DISABLE_XET": "1",
    }
    wd = tmp_path / "weights"
    res = _cli(["weights", "pull", "fake", "--weights-dir", str(wd)], env)
    assert res.returncode == 0, res.stderr
    assert (wd / "fake" / "ckpt" / "model.pt").read_bytes() == BIG
    assert (wd / "fake" / "google" / "umt5-xxl" / "tokenizer.json").is_file()
    assert _cli(["weights", "verify", "fake", "--weights-dir", str(wd)], env).returncode == 0
    (wd / "fake" / "Wan2.1_VAE.pth").write_bytes(SMALL[:5])
    bad = _cli(["weights", "verify", "fake", "--weights-dir", str(wd)], env)
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        f"error: 1 of 3 files of 'fake' failed verification (vae: size 5 bytes, expected {len(SMALL)} (truncated or wrong file)); "
        "run `livestyle weights pull fake`"
    )
    (wd / "fake" / "Wan2.1_VAE.pth").write_bytes(SMALL)
    middle = len(BIG) - (2 << 20)  # inside the critic's zeros: the structure still reads, the content differs
    (wd / "fake" / "ckpt" / "model.pt").write_bytes(BIG[:middle] + b"\x01" + BIG[middle + 1:])
    bad = _cli(["weights", "verify", "fake"], {**env, "LIVESTYLE_WEIGHTS_DIR": str(wd)})
    assert "(dit: sha256 " in bad.stderr and bad.returncode == 1


def test_hub_errors_are_one_line(hub: FakeHub, tmp_path: Path) -> None:
    from livestyle.models.weights_pull import pull

    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "gone.yaml").write_text(yaml.safe_dump({"name": "gone", "files": {"dit": {"repo": "org/dit-repo", "file": "nope.pt"}}}))
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "LIVESTYLE_MODELS_DIR": str(reg), "HF_HUB_DISABLE_XET": "1"}
    res = _cli(["weights", "pull", "gone"], env)
    assert res.returncode == 1
    assert res.stderr.strip() == "error: org/dit-repo/nope.pt not found on the Hugging Face Hub; check configs/models/gone.yaml"
    assert pull is not None


def test_no_network_fails_fast_and_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"), "LIVESTYLE_MODELS_DIR": str(_registry(tmp_path / "reg"))}
    start = time.monotonic()
    res = _cli(["weights", "pull", "fake"], env)
    assert time.monotonic() - start < 60
    assert res.returncode == 1
    # every file still to fetch is named, with where each goes (not only the first)
    assert res.stderr.strip() == (
        "error: cannot download org/dit-repo/ckpt/model.pt, org/base/google/umt5-xxl, org/base/Wan2.1_VAE.pth for "
        "'fake': no connection to the Hugging Face Hub; download them elsewhere and put them at DIR/fake/ckpt/model.pt, "
        "DIR/fake/google/umt5-xxl, DIR/fake/Wan2.1_VAE.pth, then pass --weights-dir DIR (or set LIVESTYLE_WEIGHTS_DIR=DIR)"
    )
    offline = _cli(["weights", "pull", "fake"], {**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 1 and "fake': HF_HUB_OFFLINE is set; download them elsewhere" in offline.stderr
    assert "org/base/Wan2.1_VAE.pth" in offline.stderr
    one = _cli(["weights", "pull", "fake", "--role", "dit"], {**env, "HF_HUB_OFFLINE": "1"})
    assert "cannot download org/dit-repo/ckpt/model.pt for 'fake': HF_HUB_OFFLINE is set; download it elsewhere and put it at DIR/fake/ckpt/model.pt," in one.stderr


def test_not_enough_disk_space(tmp_path: Path) -> None:
    env = {
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
        "LIVESTYLE_MODELS_DIR": str(_registry(tmp_path / "reg", dit_size=10**18)),
    }
    res = _cli(["weights", "pull", "fake", "--role", "dit"], env)
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: not enough disk space for 'fake' in {tmp_path / 'hf' / 'hub'}: 1000000.0 TB needed, ")
    assert "free some space, or download elsewhere with --weights-dir DIR" in res.stderr


def test_cli_unknown_model_and_missing_file(tmp_path: Path) -> None:
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    res = _cli(["weights", "pull", "sdv3"], env)
    assert res.returncode == 1 and res.stderr.startswith("error: unknown model 'sdv3'; known models: krea-14b, longlive-1.3b")
    res = _cli(["weights", "path", "krea-14b", "--role", "dit"], env)
    assert res.returncode == 1
    assert "missing its dit file krea/krea-realtime-video/krea-realtime-video-14b.safetensors" in res.stderr
    listing = _cli(["weights", "list"], {**env, "COLUMNS": "200"})
    assert listing.returncode == 0 and "sdv2-1.3b" in listing.stdout and "not downloaded" in listing.stdout


def test_download_sizes_never_leave_a_file_out() -> None:
    """Issue 27, point 5: a file of unknown size dropped out of the sum, so sdv2-14b and sdv2-1.3b
    both showed ~11.9 GB. A DiT of unknown exact size counts its bf16 weights as a lower bound (≥)."""
    import torch

    from livestyle.models.dit import DIT_CONFIGS, CausalWanDiT

    for dit in ("1.3b", "14b"):
        with torch.device("meta"):
            params = sum(p.numel() for p in CausalWanDiT(DIT_CONFIGS[dit]).parameters())
        for model in list_models():
            if model.dit == dit and model.files["dit"].size is None and model.files["dit"].approx_size is None:
                assert model.files["dit"].min_size == 2 * params, model.name
    small, large = get_model("sdv2-1.3b"), get_model("sdv2-14b")
    assert small.download_text == "≥14.7 GB" and large.download_text == "≥40.5 GB"
    assert get_model("mediapipe-selfie").download_text == "729.4 KB"  # every size exact
    assert get_model("modnet-webcam").download_text == "~26.3 MB"  # an estimate


@pytest.mark.parametrize("columns", ["80", "60"])
def test_weights_list_never_cuts_the_names_you_type(tmp_path: Path, columns: str) -> None:
    """Issue 27, point 5: at 80 columns the names came out as `longlive-1.…` and `self-forcin…`."""
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "COLUMNS": columns}
    listing = _cli(["weights", "list"], env)
    assert listing.returncode == 0, listing.stderr
    first_cells = [ln.split("│")[1].strip() for ln in listing.stdout.splitlines() if ln.startswith("│")]
    assert {m.name for m in list_models()} <= set(first_cells), first_cells
    rows = {ln.split("│")[1].strip(): ln for ln in listing.stdout.splitlines() if ln.startswith("│")}
    assert "≥14.7 GB" in rows["sdv2-1.3b"] and "≥40.5 GB" in rows["sdv2-14b"]
