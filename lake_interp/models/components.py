"""Transformer building blocks with TransformerLens hook points around a backbone's own modules.

The hooked blocks do not re-implement any arithmetic: they call the original library's submodules
(LayerNorms, attention, Linear layers, LayerScale) in the original order and place a
:class:`~transformer_lens.hook_points.HookPoint` on every intermediate activation, so the hooked model
computes exactly what the original computes, and a hook that returns a tensor replaces the
activation for everything downstream.

Hook names inside one block (TransformerLens convention)::

    blocks.{l}.hook_resid_pre        [batch, tokens, d_model]
    blocks.{l}.ln1.hook_normalized   [batch, tokens, d_model]
    blocks.{l}.hook_attn_out         [batch, tokens, d_model]   (after LayerScale)
    blocks.{l}.hook_resid_mid        [batch, tokens, d_model]
    blocks.{l}.ln2.hook_normalized   [batch, tokens, d_model]
    blocks.{l}.mlp.hook_pre          [batch, tokens, d_mlp]     (before the activation function)
    blocks.{l}.mlp.hook_post         [batch, tokens, d_mlp]     (the MLP neurons)
    blocks.{l}.hook_mlp_out          [batch, tokens, d_model]   (after LayerScale)
    blocks.{l}.hook_resid_post       [batch, tokens, d_model]

Example:
    >>> import torch
    >>> from torch import nn
    >>> mlp = HookedMLP(nn.Linear(4, 16), nn.GELU(), nn.Linear(16, 4))
    >>> mlp(torch.zeros(1, 3, 4)).shape
    torch.Size([1, 3, 4])
"""

from __future__ import annotations

from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint


class HookedLayerNorm(nn.Module):
    """Wraps a normalisation module and exposes its output as ``hook_normalized``."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.hook_normalized = HookPoint()  # [batch, tokens, d_model]

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_normalized(self.norm(x))


class HookedMLP(nn.Module):
    """``fc_out(act(fc_in(x)))`` with the hidden units exposed as ``hook_pre`` / ``hook_post``.

    ``mid`` holds whatever the backbone applies between the activation and ``fc_out`` (timm's
    dropout and optional norm; identity in eval for the models we support).
    """

    def __init__(self, fc_in: nn.Module, act: nn.Module, fc_out: nn.Module, mid: nn.Module | None = None) -> None:
        super().__init__()
        self.fc_in = fc_in
        self.act = act
        self.mid = mid if mid is not None else nn.Identity()
        self.fc_out = fc_out
        self.hook_pre = HookPoint()  # [batch, tokens, d_mlp]
        self.hook_post = HookPoint()  # [batch, tokens, d_mlp]

    def forward(self, x: Tensor) -> Tensor:
        pre = self.hook_pre(self.fc_in(x))  # [batch, tokens, d_mlp]
        post = self.hook_post(self.act(pre))  # [batch, tokens, d_mlp]
        return self.fc_out(self.mid(post))  # [batch, tokens, d_model]


class TimmAttention(nn.Module):
    """Adapter giving timm's ``Attention`` the ``attn(x, attn_mask)`` call used by :class:`HookedBlock`."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        if attn_mask is None:
            return self.attn(x)
        return self.attn(x, attn_mask=attn_mask)


class MultiheadAttention(nn.Module):
    """Adapter for ``torch.nn.MultiheadAttention`` (batch-first) as open_clip calls it."""

    def __init__(self, attn: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        if attn_mask is not None:
            attn_mask = attn_mask.to(x.dtype)
        return self.attn(x, x, x, need_weights=False, attn_mask=attn_mask)[0]


class HookedBlock(nn.Module):
    """A pre-LayerNorm transformer block: ``x + ls1(attn(ln1(x)))`` then ``x + ls2(mlp(ln2(x)))``."""

    def __init__(
        self,
        ln1: nn.Module,
        attn: nn.Module,
        ls1: nn.Module | None,
        ln2: nn.Module,
        mlp: HookedMLP,
        ls2: nn.Module | None,
    ) -> None:
        super().__init__()
        self.ln1 = HookedLayerNorm(ln1)
        self.attn = attn
        self.ls1 = ls1 if ls1 is not None else nn.Identity()
        self.ln2 = HookedLayerNorm(ln2)
        self.mlp = mlp
        self.ls2 = ls2 if ls2 is not None else nn.Identity()
        self.hook_resid_pre = HookPoint()  # [batch, tokens, d_model]
        self.hook_attn_out = HookPoint()  # [batch, tokens, d_model]
        self.hook_resid_mid = HookPoint()  # [batch, tokens, d_model]
        self.hook_mlp_out = HookPoint()  # [batch, tokens, d_model]
        self.hook_resid_post = HookPoint()  # [batch, tokens, d_model]

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        resid_pre = self.hook_resid_pre(x)  # [batch, tokens, d_model]
        attn_out = self.hook_attn_out(self.ls1(self.attn(self.ln1(resid_pre), attn_mask)))
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_out = self.hook_mlp_out(self.ls2(self.mlp(self.ln2(resid_mid))))
        return self.hook_resid_post(resid_mid + mlp_out)  # [batch, tokens, d_model]


def block_from_timm(block: nn.Module) -> HookedBlock:
    """Wrap a timm ``vision_transformer.Block`` (pre-norm, optional LayerScale)."""
    mlp = block.mlp
    mid = nn.Sequential(mlp.drop1, mlp.norm) if hasattr(mlp, "drop1") else None
    return HookedBlock(
        ln1=block.norm1,
        attn=TimmAttention(block.attn),
        ls1=block.ls1,
        ln2=block.norm2,
        mlp=HookedMLP(mlp.fc1, mlp.act, mlp.fc2, mid=mid),
        ls2=block.ls2,
    )


def block_from_open_clip(block: nn.Module) -> HookedBlock:
    """Wrap an open_clip ``ResidualAttentionBlock`` (``ln_1, attn, ls_1, ln_2, mlp, ls_2``)."""
    if not isinstance(block.attn, nn.MultiheadAttention):
        raise TypeError(f"unsupported open_clip attention {type(block.attn).__name__}")
    return HookedBlock(
        ln1=block.ln_1,
        attn=MultiheadAttention(block.attn),
        ls1=block.ls_1,
        ln2=block.ln_2,
        mlp=HookedMLP(block.mlp.c_fc, block.mlp.gelu, block.mlp.c_proj),
        ls2=block.ls_2,
    )


def run_blocks(
    blocks: nn.ModuleList, x: Tensor, stop_at_layer: int | None = None, attn_mask: Tensor | None = None
) -> Tensor:
    """Run ``blocks[:stop_at_layer]`` on the residual stream ``x`` ``[batch, tokens, d_model]``."""
    for block in blocks[:stop_at_layer]:
        x = block(x, attn_mask)
    return x


def check_stop_at_layer(stop_at_layer: int | None, n_layers: int) -> None:
    """Validate a ``stop_at_layer`` argument (TransformerLens semantics: run blocks ``0..stop-1``)."""
    if stop_at_layer is not None and not (0 <= stop_at_layer <= n_layers):
        raise ValueError(f"stop_at_layer must be in [0, {n_layers}], got {stop_at_layer}")

