"""``HookedCLIP``: an open_clip CLIP model with hook points on both towers.

The image tower is a :class:`HookedViT` (hook names ``blocks.{l}.*``, ``ln_final.hook_normalized``);
the text tower lives under ``text.`` (``text.hook_embed``, ``text.blocks.{l}.*``,
``text.ln_final.hook_normalized``). Both share the open_clip model's parameters.

Example:
    >>> from lake_interp import load_model
    >>> clip = load_model("random-clip-tiny")  # random weights: for testing mechanics only
    >>> text = clip.tokenize(["a photo of a screw"])
    >>> clip.encode_text(text).shape
    torch.Size([1, 32])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from lake_interp.errors import ConfigError
from lake_interp.models.components import (
    HookedBlock,
    HookedLayerNorm,
    block_from_open_clip,
    check_stop_at_layer,
    run_blocks,
)
from lake_interp.models.hooked_vit import HookedViT, ViTConfig
from lake_interp.models.preprocessing import CLIP_MEAN, CLIP_STD, PreprocessConfig


class OpenClipEmbed(nn.Module):
    """open_clip's patch embedding: ``conv1``, class token, fixed position embedding, patch dropout."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.conv1 = visual.conv1
        self.class_embedding = visual.class_embedding
        self.positional_embedding = visual.positional_embedding
        self.patch_dropout = visual.patch_dropout
        self.grid_size = tuple(visual.grid_size)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.conv1(pixels)  # [batch, d_model, rows, cols]
        if tuple(x.shape[-2:]) != self.grid_size:
            raise ConfigError(
                f"this CLIP model has a fixed {self.grid_size} patch grid; got {tuple(x.shape[-2:])} "
                "(resize the images to the model's image size)"
            )
        x = x.flatten(2).transpose(1, 2)  # [batch, patches, d_model]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.patch_dropout(x)  # [batch, tokens, d_model]


class HookedTextTower(nn.Module):
    """open_clip's text transformer with hook points (causal attention, EOT pooling, projection)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.hook_embed = HookPoint()  # [batch, context, d_text]
        self.blocks = nn.ModuleList(block_from_open_clip(b) for b in clip.transformer.resblocks)
        self.ln_final = HookedLayerNorm(clip.ln_final)
        self.text_projection = clip.text_projection
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)
        self.pool_type = clip.text_pool_type
        self.eos_token_id = getattr(clip, "text_eos_id", None)
        if self.pool_type not in ("argmax", "eos", "first", "last"):
            raise ConfigError(f"unsupported text pooling {self.pool_type!r}")

    def forward(self, text: Tensor, stop_at_layer: int | None = None) -> Tensor:
        """Token ids ``[batch, context]`` -> all tokens after ``ln_final`` ``[batch, context, d_text]``."""
        check_stop_at_layer(stop_at_layer, len(self.blocks))
        x = self.hook_embed(self.token_embedding(text) + self.positional_embedding)
        x = run_blocks(self.blocks, x, stop_at_layer, attn_mask=self.attn_mask)
        return x if stop_at_layer is not None else self.ln_final(x)

    def pool(self, tokens: Tensor, text: Tensor) -> Tensor:
        """Pick the sequence embedding as open_clip does: ``[batch, context, d] -> [batch, d]``."""
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        if self.pool_type == "argmax":
            return tokens[rows, text.argmax(dim=-1)]
        if self.pool_type == "eos":
            return tokens[rows, (text == self.eos_token_id).int().argmax(dim=-1)]
        return tokens[:, 0] if self.pool_type == "first" else tokens[:, -1]

    def project(self, pooled: Tensor) -> Tensor:
        if self.text_projection is None:
            return pooled
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(pooled)
        return pooled @ self.text_projection


class HookedCLIP(HookedViT):
    """CLIP with hook points on the image tower (top level) and the text tower (``text.``)."""

    def __init__(
        self,
        cfg: ViTConfig,
        clip: nn.Module,
        tokenizer: Callable[[Sequence[str]], Tensor],
    ) -> None:
        visual = clip.visual
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "final_ln_after_pool", False):
            raise ConfigError("CLIP vision towers with attention pooling or LN-after-pool are not supported")
        blocks: list[HookedBlock] = [block_from_open_clip(b) for b in visual.transformer.resblocks]
        super().__init__(cfg, OpenClipEmbed(visual), visual.ln_pre, blocks, visual.ln_post, text=HookedTextTower(clip))
        self.visual_pool_type = visual.pool_type
        self.proj = visual.proj  # [d_model, d_embed] or None
        self.logit_scale = clip.logit_scale
        self.tokenizer = tokenizer
        self.requires_grad_(False)

    def pool_image(self, tokens: Tensor) -> Tensor:
        """``[batch, tokens, d_model] -> [batch, d_model]`` as the open_clip vision tower pools."""
        if self.visual_pool_type == "avg":
            return tokens[:, self.cfg.n_prefix_tokens :].mean(dim=1)
        if self.visual_pool_type == "tok":
            return tokens[:, 0]
        raise ConfigError(f"unsupported visual pooling {self.visual_pool_type!r}")

    def project_tokens(self, tokens: Tensor) -> Tensor:
        """Map image tokens (after ``ln_final``) into the joint space: ``[..., d_model] -> [..., d_embed]``."""
        return tokens if self.proj is None else tokens @ self.proj

    def encode_image(self, pixels: Tensor, normalize: bool = False) -> Tensor:
        """Image embedding ``[batch, d_embed]`` (equals open_clip's ``encode_image``)."""
        embedding = self.project_tokens(self.pool_image(self(pixels)))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def encode_text(self, text: Tensor, normalize: bool = False) -> Tensor:
        """Text embedding ``[batch, d_embed]`` from token ids (equals open_clip's ``encode_text``)."""
        embedding = self.text.project(self.text.pool(self.text(text), text))
        return F.normalize(embedding, dim=-1) if normalize else embedding

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """Token ids ``[batch, context]`` with open_clip's tokenizer for this model."""
        return self.tokenizer(list(texts))

    @torch.no_grad()
    def embed_prompts(self, prompts: Sequence[str]) -> Tensor:
        """Mean of the L2-normalised embeddings of ``prompts``, renormalised: ``[d_embed]``."""
        embeddings = self.encode_text(self.tokenize(prompts), normalize=True)  # [prompts, d_embed]
        return F.normalize(embeddings.mean(dim=0), dim=-1)


def clip_config(clip: nn.Module, *, name: str, description: str, is_random: bool) -> ViTConfig:
    """Read a :class:`ViTConfig` off an open_clip CLIP model."""
    visual = clip.visual
    block = visual.transformer.resblocks[0]
    preprocess_cfg = getattr(visual, "preprocess_cfg", {}) or {}
    size = visual.image_size
    image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
    resize_mode = preprocess_cfg.get("resize_mode", "shortest")
    return ViTConfig(
        name=name,
        description=description,
        backend="open_clip",
        d_model=int(visual.transformer.width),
        n_layers=len(visual.transformer.resblocks),
        n_heads=int(block.attn.num_heads),
        d_mlp=int(block.mlp.c_fc.out_features),
        patch_size=int(visual.patch_size[0]),
        image_size=image_size,
        n_prefix_tokens=1,
        preprocess=PreprocessConfig(
            image_size=image_size,
            mean=tuple(preprocess_cfg.get("mean", CLIP_MEAN)),
            std=tuple(preprocess_cfg.get("std", CLIP_STD)),
            resize="squash" if resize_mode == "squash" else "shortest_crop",
            interpolation=preprocess_cfg.get("interpolation", "bicubic"),
        ),
        is_random=is_random,
        has_text=True,
        d_embed=int(visual.output_dim),
        dynamic_image_size=False,
    )
