"""Patch distances to anomaly maps and image scores: nearest neighbour, upsampling, smoothing.

Example:
    >>> import torch
    >>> bank = torch.nn.functional.normalize(torch.randn(50, 8), dim=-1)
    >>> nearest_distance(bank[:3], bank, "cosine").abs().max() < 1e-5
    tensor(True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lake_interp.errors import ConfigError


def nearest_distance(queries: Tensor, bank: Tensor, distance: str = "cosine", chunk: int = 8192) -> Tensor:
    """Distance of each query to its nearest bank entry: ``[n, d], [m, d] -> [n]``.

    For ``cosine`` both inputs must already be L2-normalised; the search is one matrix product per chunk.
    """
    out = torch.empty(queries.shape[0], dtype=queries.dtype)
    bank_sq = (bank * bank).sum(dim=1) if distance == "l2" else None  # [m]
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]  # [c, d]
        if distance == "cosine":
            out[start : start + chunk] = 1.0 - (q @ bank.T).amax(dim=1)
        elif distance == "l2":
            squared = (q * q).sum(dim=1, keepdim=True) - 2.0 * q @ bank.T + bank_sq  # [c, m]
            out[start : start + chunk] = squared.amin(dim=1).clamp_min(0).sqrt()
        else:
            raise ConfigError(f"unknown distance {distance!r}")
    return out


def nearest_index(queries: Tensor, bank: Tensor, distance: str = "cosine") -> Tensor:
    """Index of the nearest bank entry of each query: ``[n, d], [m, d] -> [n]``."""
    if distance == "cosine":
        return (queries @ bank.T).argmax(dim=1)
    return torch.cdist(queries, bank).argmin(dim=1)


def gaussian_kernel1d(sigma: float) -> Tensor:
    """Normalised 1-D Gaussian, radius ``ceil(4 sigma)`` (anomalib's and scipy's truncation)."""
    radius = max(1, math.ceil(4.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing with reflected borders: ``[n, h, w] -> [n, h, w]``."""
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma).to(maps.dtype)
    radius = (len(kernel) - 1) // 2
    x = maps[:, None]  # [n, 1, h, w]
    pad_mode = "reflect" if min(maps.shape[-2:]) > radius else "replicate"
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=pad_mode), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode=pad_mode), kernel.view(1, 1, -1, 1))
    return x[:, 0]


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize ``[n, h, w] -> [n, H, W]``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def image_scores(maps: Tensor, rule: str = "max", top_q: float = 0.01) -> Tensor:
    """Image score from each map: ``max`` or mean of the top ``top_q`` fraction: ``[n, H, W] -> [n]``."""
    flat = maps.flatten(1)
    if rule == "max":
        return flat.amax(dim=1)
    if rule == "topq":
        count = max(1, int(round(top_q * flat.shape[1])))
        return flat.topk(count, dim=1).values.mean(dim=1)
    raise ConfigError(f"unknown score rule {rule!r}")


def suppress_outlier_tokens(patch_maps: Tensor, token_norms: Tensor, threshold: float) -> Tensor:
    """Replace the value at tokens whose norm exceeds ``threshold`` by the median of their 3x3 neighbours.

    ``patch_maps`` and ``token_norms`` are ``[n, rows, cols]``; used for structural bias (c), the
    high-norm "artefact" tokens of ViTs that carry global information instead of local content.
    """
    outliers = token_norms > threshold  # [n, rows, cols]
    if not bool(outliers.any()):
        return patch_maps
    padded = F.pad(patch_maps[:, None], (1, 1, 1, 1), mode="replicate")  # [n, 1, rows+2, cols+2]
    neighbours = F.unfold(padded, kernel_size=3)  # [n, 9, rows*cols]
    neighbours = torch.cat([neighbours[:, :4], neighbours[:, 5:]], dim=1)  # drop the centre
    median = neighbours.median(dim=1).values.view_as(patch_maps)
    return torch.where(outliers, median, patch_maps)
