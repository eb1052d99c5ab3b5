"""Neuron sensitivity on normal patches and the choice of the sparse set.

Example:
    >>> import torch
    >>> acts = torch.randn(500, 8) * torch.arange(1, 9)  # neuron j has std j + 1
    >>> scores = sensitivity(acts, "variance")
    >>> select_neurons(scores, 3, "top").tolist()
    [7, 6, 5]
"""

from __future__ import annotations

import torch
from torch import Tensor

from lake_interp.errors import ConfigError


def normalize_tokens(features: Tensor, mode: str, eps: float = 1e-6) -> Tensor:
    """Per-token normalisation over all channels: ``[..., width] -> [..., width]``.

    ``layernorm`` centres and scales each token (no affine), ``l2`` divides by its norm, ``none`` is identity.
    """
    if mode == "none":
        return features
    if mode == "layernorm":
        return torch.nn.functional.layer_norm(features, features.shape[-1:], eps=eps)
    if mode == "l2":
        return torch.nn.functional.normalize(features, dim=-1, eps=eps)
    raise ConfigError(f"unknown feature_norm {mode!r}")


def sensitivity(activations: Tensor, criterion: str = "variance") -> Tensor:
    """Sensitivity of each neuron over normal patches: ``[patches, width] -> [width]``.

    ``variance`` (LAKE's criterion), ``mad`` (median absolute deviation, robust to a few outlier patches)
    or ``range`` (99th minus 1st percentile).
    """
    if activations.ndim != 2 or activations.shape[0] < 2:
        raise ConfigError(f"sensitivity needs [patches >= 2, width] activations, got {tuple(activations.shape)}")
    activations = activations.float()
    if criterion == "variance":
        return activations.var(dim=0)
    if criterion == "mad":
        median = activations.median(dim=0).values
        return (activations - median).abs().median(dim=0).values
    if criterion == "range":
        q = torch.quantile(activations, torch.tensor([0.01, 0.99]), dim=0)
        return q[1] - q[0]
    raise ConfigError(f"unknown criterion {criterion!r}")


def select_neurons(scores: Tensor, n: int, selection: str = "top", seed: int = 0) -> Tensor:
    """Indices of ``n`` neurons: highest scores (``top``), lowest (``bottom``), a seeded ``random`` draw,
    or ``all``. Returned sorted by score (descending) for top/bottom, ascending index otherwise."""
    width = scores.shape[0]
    if not 1 <= n <= width:
        raise ConfigError(f"cannot select {n} of {width} neurons")
    if selection == "all":
        return torch.arange(width)
    if selection == "top":
        return torch.argsort(scores, descending=True, stable=True)[:n]
    if selection == "bottom":
        return torch.argsort(scores, descending=False, stable=True)[:n]
    if selection == "random":
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randperm(width, generator=generator)[:n].sort().values
    raise ConfigError(f"unknown selection {selection!r}")


def ranks(scores: Tensor) -> Tensor:
    """Rank of each neuron by descending score (0 = most sensitive): ``[width] -> [width]``."""
    order = torch.argsort(scores, descending=True, stable=True)
    out = torch.empty_like(order)
    out[order] = torch.arange(len(order))
    return out
