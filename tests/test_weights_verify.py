"""`livestyle weights verify` checks what it can without published hashes — size when known, the
format header, tensor names and shapes against the model config, a pinned git blob — and lists the
rest as unverified; junk, truncated files and checkpoints of the wrong model size fail with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import save_file

from livestyle.models.testing import dit as W
from livestyle.models.testing import stack
from livestyle.models.weights import ModelSpec, get_model, list_models
from livestyle.models.weights_verify import git_blob_sha1, verify

FILES = {
    "dit": "ckpt/model.pt",
    "vae": "Wan2.1_VAE.pth",
    "text_encoder": "models_t5_umt5-xxl-enc-bf16.pth",
    "taehv": "taew2_1.pth",
}


@pytest.fixture(autouse=True)
def _no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LIVESTYLE_WEIGHTS_DIR", raising=False)


def _model(reg: Path, *, dit: str = "tiny", container: str | None = "generator", files: dict | None = None,
           adapter: dict | None = None) -> ModelSpec:
    reg.mkdir(parents=True, exist_ok=True)
    entry: dict = {"name": "fake", "family": "sdv2", "dit": dit, "container": container,
                   "files": files or {role: {"repo": "org/x", "file": f} for role, f in FILES.items()}}
    if adapter:
        entry["adapter"] = adapter
    (reg / "fake.yaml").write_text(yaml.safe_dump(entry))
    return get_model("fake", reg)


def _tiny_stack(wd: Path) -> Path:
    root = wd / "fake"
    W.write_sdv2_checkpoint(root / FILES["dit"], ema_too=True)
    stack.write_wan_vae_pth(root / FILES["vae"])
    stack.write_umt5_wan_pth(root / FILES["text_encoder"])
    stack.write_taehv(root / FILES["taehv"])
    return root


def test_a_good_stack_is_checked_and_says_what_stayed_unverified(tmp_path: Path) -> None:
    model = _model(tmp_path / "reg")
    _tiny_stack(tmp_path / "w")
    results = {r.spec.role: r for r in verify(model, weights_dir=tmp_path / "w")}
    assert all(r.ok and r.state == "checked" for r in results.values())
    assert results["dit"].checked == ("zip-pickle header", "69 tensors fit the tiny transformer (pt_generator layout, weights 'generator')")
    assert results["vae"].checked[-1] == "194 tensors fit the tiny VAE"
    assert results["text_encoder"].checked[-1] == "22 tensors fit the tiny umT5"
    assert results["taehv"].checked[-1] == "128 tensors fit TAEHV tiny"
    for r in results.values():  # never a bare "ok": what was not checked is said
        assert r.unverified == ("exact size (registry has none)", "content hash (none published)")


@pytest.mark.parametrize("role", list(FILES))
def test_junk_fails_with_one_line_for_every_role(tmp_path: Path, role: str) -> None:
    model = _model(tmp_path / "reg")
    root = _tiny_stack(tmp_path / "w")
    (root / FILES[role]).write_bytes(b"hello")
    bad = [r for r in verify(model, weights_dir=tmp_path / "w") if not r.ok]
    assert [r.spec.role for r in bad] == [role]
    assert bad[0].problem == (f"{Path(FILES[role]).name} is neither safetensors nor a PyTorch checkpoint "
                              "(first bytes 68656c6c6f); it is not a model file — download it again")


def test_wrong_model_size_fails_with_one_line(tmp_path: Path) -> None:
    model = _model(tmp_path / "reg", dit="1.3b")  # the registry wants the 1.3B transformer; the file is tiny
    _tiny_stack(tmp_path / "w")
    dit = next(r for r in verify(model, weights_dir=tmp_path / "w") if r.spec.role == "dit")
    assert dit.state == "FAIL" and dit.problem == (
        "holds a transformer with dim 64, 2 layers, ffn 128, text_dim 32, but fake needs the 1.3b one "
        "(dim 1536, 30 layers, ffn 8960, text_dim 4096); wrong model size — get the right file")
    vae = next(r for r in verify(model, weights_dir=tmp_path / "w") if r.spec.role == "vae")
    assert vae.problem.startswith("encoder.conv1.weight has shape (16, 3, 3, 3, 3), the wan2.1 VAE has (96, 3, 3, 3, 3)")


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    files = {"dit": {"repo": "org/x", "file": "k.safetensors"}}
    model = _model(tmp_path / "reg", container=None, files=files)
    path = tmp_path / "w" / "fake" / "k.safetensors"
    path.parent.mkdir(parents=True)
    W.write_krea_checkpoint(path)
    assert verify(model, weights_dir=tmp_path / "w")[0].checked[-1] == "69 tensors fit the tiny transformer (krea layout)"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    problem = verify(model, weights_dir=tmp_path / "w")[0].problem
    assert problem == f"k.safetensors is {len(data) - 100} bytes but its safetensors header describes {len(data)}; truncated or padded — download it again"
    vae = {k: v.contiguous() for k, v in stack.random_wan_vae("tiny").state_dict().items()}
    save_file(vae, str(path))  # a VAE where the transformer should be
    assert "does not look like a Wan 2.1 transformer" in verify(model, weights_dir=tmp_path / "w")[0].problem
    pt = tmp_path / "w" / "fake" / "m.pt"
    W.write_sdv2_checkpoint(pt)
    pt.write_bytes(pt.read_bytes()[:-200])  # zip central directory cut off
    model = _model(tmp_path / "reg", files={"dit": {"repo": "org/x", "file": "m.pt"}})
    assert "has a broken PyTorch zip structure" in verify(model, weights_dir=tmp_path / "w")[0].problem


def test_sizes_are_checked_when_known(tmp_path: Path) -> None:
    root = _tiny_stack(tmp_path / "w")
    size = (root / FILES["vae"]).stat().st_size
    files = {"vae": {"repo": "org/x", "file": FILES["vae"], "size": size}}
    assert verify(_model(tmp_path / "reg", files=files), weights_dir=tmp_path / "w")[0].checked[0] == f"size {size} bytes"
    files["vae"]["size"] = size + 1
    assert verify(_model(tmp_path / "reg", files=files), weights_dir=tmp_path / "w")[0].problem == (
        f"size {size} bytes, expected {size + 1} (truncated or wrong file)")


def test_longlive_lora_checked_against_the_adapter_config(tmp_path: Path) -> None:
    root = tmp_path / "w" / "fake"
    root.mkdir(parents=True)
    W.write_longlive_checkpoint(root / "base.pt", root / "lora.pt", rank=4)
    files = {"dit": {"repo": "org/x", "file": "base.pt"}, "lora": {"repo": "org/x", "file": "lora.pt"}}
    good = verify(_model(tmp_path / "reg", files=files, adapter={"rank": 4, "alpha": 4}), weights_dir=tmp_path / "w")
    assert good[1].checked[-1] == "20 LoRA modules of rank 4 fit the tiny transformer; alpha 4 from the registry (the file has none)"
    bad = verify(_model(tmp_path / "reg", files=files, adapter={"rank": 256, "alpha": 256}), weights_dir=tmp_path / "w")
    assert bad[1].problem == "LoRA rank [4] but the registry's adapter says rank 256"


def test_taehv_pinned_by_git_blob(tmp_path: Path) -> None:
    root = _tiny_stack(tmp_path / "w")
    blob = git_blob_sha1(root / FILES["taehv"])
    url = "https://github.com/madebyollin/taehv/raw/1a88a7dcafa06f46866661c0d687654aafa5521b/taew2_1.pth"
    files = {"taehv": {"repo": "org/x", "file": FILES["taehv"], "git_sha1": blob, "url": url}}
    ok = verify(_model(tmp_path / "reg", files=files), weights_dir=tmp_path / "w")[0]
    assert ok.state == "verified" and ok.checked[-1] == f"git blob {blob[:12]} = the pinned upstream file"
    stack.write_taehv(root / FILES["taehv"], seed=1)  # another edition: same shapes, other weights
    other = verify(_model(tmp_path / "reg", files=files), weights_dir=tmp_path / "w")[0]
    assert other.state == "FAIL" and other.problem.endswith(f"is not the pinned upstream file {blob[:12]}; get the pinned file from {url}")
    assert verify(_model(tmp_path / "reg", files=files), weights_dir=tmp_path / "w", check_hashes=False)[0].unverified[-1] == (
        "content hash (skipped: --no-hash)")


def test_cli_prints_one_line_for_junk(tmp_path: Path) -> None:
    _model(tmp_path / "reg")
    root = _tiny_stack(tmp_path / "w")
    (root / FILES["vae"]).write_bytes(b"hello")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LIVESTYLE_"))}
    env.update({"LIVESTYLE_MODELS_DIR": str(tmp_path / "reg"), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    res = subprocess.run([sys.executable, "-m", "livestyle", "weights", "verify", "fake", "--weights-dir", str(tmp_path / "w")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "error: 1 of 4 files of 'fake' failed verification (vae: Wan2.1_VAE.pth is neither safetensors nor a PyTorch "
        "checkpoint (first bytes 68656c6c6f); it is not a model file — download it again); run `livestyle weights pull fake`")


def test_registry_pins_what_upstream_publishes() -> None:
    models = {m.name: m for m in list_models()}
    for name in ("sdv2-1.3b", "sdv2-14b", "self-forcing-1.3b", "longlive-1.3b", "krea-14b"):
        m = models[name]
        assert m.files["vae"].size == 507_609_880 and m.files["text_encoder"].size == 11_361_920_418
        assert m.files["vae"].license == m.files["text_encoder"].license == "apache-2.0"
        assert m.files["taehv"].license == "mit" and m.files["taehv"].git_sha1 == "d6ffa27358914606153bbb790bd1da1c5cf822fd"
        assert "1a88a7dcafa06f46866661c0d687654aafa5521b" in (m.files["taehv"].url or "")
        assert all(f.license for f in m.files.values())
    assert models["longlive-1.3b"].adapter == {"rank": 256, "alpha": 256}
    assert models["modnet-webcam"].files["model"].license == "apache-2.0"


def test_bad_container_and_adapter_entries(tmp_path: Path) -> None:
    from livestyle.errors import WeightsError

    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"name": "a", "container": "ema", "files": {}}))
    with pytest.raises(WeightsError, match="container must be one of generator, generator_ema, model, state_dict or null, got 'ema'"):
        get_model("a", tmp_path)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"name": "b", "adapter": {"rank": 0}, "files": {}}))
    with pytest.raises(WeightsError, match="adapter must be a mapping with a positive rank and alpha"):
        get_model("b", tmp_path)


def test_an_unreadable_file_is_a_failed_check_not_a_traceback(tmp_path: Path) -> None:
    """Issue 28, point 6: a file that cannot be read is one failed line. A non-root user gets a
    PermissionError; the tests run as root, which reads anything, so the file is a link to one that
    fails for root too (/proc/self/mem: EIO at offset 0), through the same OSError path."""
    _model(tmp_path / "reg")
    root = _tiny_stack(tmp_path / "w")
    (root / FILES["vae"]).unlink()
    (root / FILES["vae"]).symlink_to("/proc/self/mem")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LIVESTYLE_"))}
    env.update({"LIVESTYLE_MODELS_DIR": str(tmp_path / "reg"), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")})
    res = subprocess.run([sys.executable, "-m", "livestyle", "weights", "verify", "fake", "--weights-dir", str(tmp_path / "w")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().startswith("error: 1 of 4 files of 'fake' failed verification (vae: cannot be read ("), res.stderr
