"""Image- and pixel-level anomaly-detection metrics (definitions: docs ``reference/metrics.md``).

- ``image_auroc`` equals scikit-learn's ``roc_auc_score`` (ties count one half);
  ``image_ap`` equals ``average_precision_score``; ``f1_max`` is the maximum of 2PR/(P+R) over the
  precision-recall curve (undefined points, where nothing is predicted positive, are ignored).
- ``aupro`` is the **official MVTec AD** AUPRO: 8-connected ground-truth regions, the exact curve over
  all distinct thresholds, trapezoid integration up to ``fpr_limit`` (interpolated at the limit) divided
  by ``fpr_limit``.

All are computed from one sort of the negative scores and one of the positive scores, so that 300
maps of 256x256 (20 M pixels) take seconds. Why only these: between two distinct positive scores only
false positives are added, so precision, recall, F1 and PRO change only at positive scores and the
curves are exact when evaluated at every distinct positive score just above and at that score.

Degenerate inputs (documented rule): a metric that is undefined returns ``nan`` instead of raising:
AUROC when one class is absent; AP and F1-max when there is no positive; AUPRO when there is no
ground-truth region or no pixel outside the regions. Malformed inputs (shape mismatch, labels other
than 0/1, non-finite scores) raise :class:`~lake_interp.errors.ConfigError`.

Example:
    >>> import numpy as np
    >>> image_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    >>> maps = np.zeros((1, 4, 4), np.float32); maps[0, :2, :2] = 1
    >>> masks = maps > 0
    >>> round(aupro(maps, masks), 6)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lake_interp.errors import ConfigError

METRIC_NAMES = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)

__all__ = [
    "METRIC_NAMES",
    "aupro",
    "evaluate",
    "f1_max",
    "image_ap",
    "image_auroc",
    "pixel_metrics",
    "pro_curve",
    "resize_map",
    "resize_mask",
]


# ----------------------------------------------------------------------------------------------------
# core: one ranking of positives against negatives
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ranking:
    """Counts at each distinct positive score ``u`` (ascending).

    ``pos_ge``/``pos_gt``: positives scoring >= u / > u; ``neg_ge``/``neg_gt`` likewise for negatives;
    ``w_ge``/``w_gt``: summed positive weights (for PRO); ``n_pos``/``n_neg``: totals.
    """

    values: np.ndarray  # [U] distinct positive scores, ascending
    pos_ge: np.ndarray  # [U] int64
    pos_gt: np.ndarray
    neg_ge: np.ndarray
    neg_gt: np.ndarray
    w_ge: np.ndarray  # [U] float64 (empty without weights)
    w_gt: np.ndarray
    n_pos: int
    n_neg: int


def _rank(pos: np.ndarray, neg: np.ndarray, pos_weights: np.ndarray | None = None) -> _Ranking:
    """Rank positive scores ``pos`` [P] against negative scores ``neg`` [N] (1-D float arrays)."""
    neg_sorted = np.sort(neg)  # [N] ascending
    if pos_weights is None:
        pos_sorted = np.sort(pos)  # [P]
        w_sorted = None
    else:
        order = np.argsort(pos)
        pos_sorted, w_sorted = pos[order], pos_weights[order]
    n_pos, n_neg = int(pos_sorted.size), int(neg_sorted.size)
    if n_pos:
        is_first = np.empty(n_pos, dtype=bool)
        is_first[0] = True
        np.not_equal(pos_sorted[1:], pos_sorted[:-1], out=is_first[1:])
        start = np.flatnonzero(is_first)  # [U] index of first occurrence of each distinct value
    else:
        start = np.zeros(0, dtype=np.int64)
    values = pos_sorted[start]
    end = np.append(start[1:], n_pos)  # [U] one past the last occurrence
    pos_ge = n_pos - start
    pos_gt = n_pos - end
    neg_ge = n_neg - np.searchsorted(neg_sorted, values, side="left")
    neg_gt = n_neg - np.searchsorted(neg_sorted, values, side="right")
    if w_sorted is not None:
        cum = np.concatenate([[0.0], np.cumsum(w_sorted, dtype=np.float64)])  # [P+1]
        w_ge, w_gt = cum[-1] - cum[start], cum[-1] - cum[end]
    else:
        w_ge = w_gt = np.zeros(0)
    as64 = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    return _Ranking(values, as64(pos_ge), as64(pos_gt), as64(neg_ge), as64(neg_gt), w_ge, w_gt, n_pos, n_neg)


def _auroc(r: _Ranking) -> float:
    if r.n_pos == 0 or r.n_neg == 0:
        return float("nan")
    mult = r.pos_ge - r.pos_gt  # [U] positives with this value
    below = r.n_neg - r.neg_ge  # negatives strictly below
    ties = r.neg_ge - r.neg_gt
    # 2 * (sum below + 0.5 sum ties) as exact integers, then one division
    twice = int(np.dot(mult, 2 * below + ties))
    return twice / (2.0 * r.n_pos * r.n_neg)


def _ap(r: _Ranking) -> float:
    if r.n_pos == 0:
        return float("nan")
    precision = r.pos_ge / (r.pos_ge + r.neg_ge)  # [U] at threshold u
    recall_gain = (r.pos_ge - r.pos_gt) / r.n_pos  # recall added when the threshold reaches u
    return float(np.sum(recall_gain * precision))


def _f1max(r: _Ranking) -> float:
    if r.n_pos == 0:
        return float("nan")
    f1 = 2.0 * r.pos_ge / (r.pos_ge + r.neg_ge + r.n_pos)  # 2TP / (TP + FP + P)
    return float(f1.max())


def _pro_points(r: _Ranking) -> tuple[np.ndarray, np.ndarray]:
    """Exact (FPR, PRO) curve, FPR ascending, from (0, 0) to (1, 1)."""
    # descending thresholds: for each distinct positive value, the point just above it and at it
    fpr = np.empty(2 * r.values.size + 2)
    pro = np.empty_like(fpr)
    fpr[0], pro[0] = 0.0, 0.0
    fpr[1:-1:2], pro[1:-1:2] = r.neg_gt[::-1] / r.n_neg, r.w_gt[::-1]
    fpr[2:-1:2], pro[2:-1:2] = r.neg_ge[::-1] / r.n_neg, r.w_ge[::-1]
    fpr[-1], pro[-1] = 1.0, 1.0
    return np.clip(fpr, 0.0, 1.0), np.clip(pro, 0.0, 1.0)


def _integrate(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area under (fpr, pro) for fpr in [0, limit], interpolated at ``limit``, divided by limit."""
    idx = int(np.searchsorted(fpr, limit, side="right"))  # points [0, idx) have fpr <= limit
    x, y = fpr[:idx], pro[:idx]
    if x[-1] < limit:  # add the interpolated point at the limit (idx < len since fpr ends at 1)
        x0, x1, y0, y1 = fpr[idx - 1], fpr[idx], pro[idx - 1], pro[idx]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        x, y = np.append(x, limit), np.append(y, y_lim)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0) / limit)


# ----------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------
def _scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise ConfigError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.all(np.isfinite(s)):
        raise ConfigError(f"scores contain {int((~np.isfinite(s)).sum())} NaN or infinite values")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ConfigError(f"labels must be 0 (normal) or 1 (anomalous), got values {np.unique(y)[:5].tolist()}")
    return s, y.astype(bool)


def _image_ranking(scores, labels) -> _Ranking:
    s, y = _scores_labels(scores, labels)
    return _rank(s[y], s[~y])


def image_auroc(scores, labels) -> float:
    """Area under the ROC curve (= ``sklearn.metrics.roc_auc_score``); nan if one class is absent."""
    return _auroc(_image_ranking(scores, labels))


def image_ap(scores, labels) -> float:
    """Average precision (= ``sklearn.metrics.average_precision_score``); nan without positives."""
    return _ap(_image_ranking(scores, labels))


def f1_max(scores, labels) -> float:
    """Maximum F1 over all thresholds of the precision-recall curve; nan without positives.

    Example:
        >>> f1_max([0.9, 0.2, 0.8], [1, 0, 0])
        1.0
    """
    return _f1max(_image_ranking(scores, labels))


def _maps_masks(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(maps)
    g = np.asarray(masks)
    if m.ndim == 2:
        m, g = m[None], g[None] if g.ndim == 2 else g
    if m.ndim != 3 or m.shape != g.shape:
        raise ConfigError(f"anomaly maps and masks must both be [N, H, W] of equal shape, got {m.shape} and {g.shape}")
    m = m.astype(np.float32, copy=False)
    if not np.all(np.isfinite(m)):
        raise ConfigError(f"anomaly maps contain {int((~np.isfinite(m)).sum())} NaN or infinite values")
    return m, g > 0


def _region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Per mask pixel (in ``masks[masks]`` order) the weight 1 / (R * |its region|), and R."""
    parts: list[np.ndarray] = []
    n_regions = 0
    for i in range(masks.shape[0]):
        if not masks[i].any():
            continue
        labelled, n = ndimage.label(masks[i], structure=EIGHT_CONNECTED)  # [H, W] region ids 1..n
        sizes = np.bincount(labelled.ravel())  # [n + 1]; index 0 = background
        inv = np.zeros(n + 1)
        inv[1:] = 1.0 / sizes[1:]
        parts.append(inv[labelled[masks[i]]])  # row-major order, as masks[masks]
        n_regions += n
    weights = np.concatenate(parts) if parts else np.zeros(0)
    return (weights / n_regions if n_regions else weights), n_regions


def _pixel_ranking(maps, masks, weighted: bool) -> tuple[_Ranking, int]:
    m, g = _maps_masks(maps, masks)
    weights, n_regions = _region_weights(g) if weighted else (None, 0)
    return _rank(m[g], m[~g], weights), n_regions


def pro_curve(anomaly_maps, masks) -> tuple[np.ndarray, np.ndarray]:
    """The exact official PRO curve: arrays FPR [M] (ascending, 0 to 1) and PRO [M].

    Raises ConfigError when there is no region or no pixel outside the regions.
    """
    r, n_regions = _pixel_ranking(anomaly_maps, masks, weighted=True)
    if n_regions == 0 or r.n_neg == 0:
        raise ConfigError("the PRO curve needs at least one ground-truth region and one pixel outside all regions")
    return _pro_points(r)


def aupro(anomaly_maps, masks, fpr_limit: float = 0.3) -> float:
    """Official MVTec AD AUPRO of maps [N, H, W] against masks [N, H, W], normalised to [0, 1].

    Example:
        >>> maps = np.zeros((1, 4, 4)); masks = np.zeros((1, 4, 4), bool); masks[0, 0, 0] = True
        >>> aupro(-maps, masks)  # all pixels tied: PRO jumps to 1 at FPR 1
        0.15
    """
    if not 0 < fpr_limit <= 1:
        raise ConfigError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    r, n_regions = _pixel_ranking(anomaly_maps, masks, weighted=True)
    if n_regions == 0 or r.n_neg == 0:
        return float("nan")
    return _integrate(*_pro_points(r), fpr_limit)


def pixel_metrics(anomaly_maps, masks, fpr_limit: float = 0.3) -> dict[str, float]:
    """Pixel AUROC, AP, F1-max and AUPRO over all pixels of maps [N, H, W] vs masks [N, H, W].

    Example:
        >>> maps = np.random.default_rng(0).random((2, 8, 8)); masks = maps > 0.9
        >>> pixel_metrics(maps, masks)["pixel_auroc"]
        1.0
    """
    if not 0 < fpr_limit <= 1:
        raise ConfigError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    r, n_regions = _pixel_ranking(anomaly_maps, masks, weighted=True)
    pro = float("nan") if n_regions == 0 or r.n_neg == 0 else _integrate(*_pro_points(r), fpr_limit)
    return {"pixel_auroc": _auroc(r), "pixel_ap": _ap(r), "pixel_f1max": _f1max(r), "pixel_aupro": pro}


# ----------------------------------------------------------------------------------------------------
# evaluation of one category
# ----------------------------------------------------------------------------------------------------
def _target_hw(eval_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(eval_size, (int, np.integer)) and not isinstance(eval_size, bool):
        hw = (int(eval_size), int(eval_size))
    elif isinstance(eval_size, Sequence) and len(eval_size) == 2:
        hw = (int(eval_size[0]), int(eval_size[1]))
    else:
        raise ConfigError(f"eval_size must be an int or (height, width), got {eval_size!r}")
    if min(hw) < 1:
        raise ConfigError(f"eval_size must be positive, got {eval_size!r}")
    return hw


def resize_map(anomaly_map: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (Pillow, antialiased when shrinking) of a map [H, W] to ``hw``: float32 [h, w]."""
    from PIL import Image

    a = np.asarray(anomaly_map, dtype=np.float32)
    if a.shape == tuple(hw):
        return a
    return np.asarray(Image.fromarray(a, mode="F").resize((hw[1], hw[0]), Image.BILINEAR), dtype=np.float32)


def resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask [H, W] (binarised > 0) to ``hw``: bool [h, w]."""
    from PIL import Image

    b = np.asarray(mask) > 0
    if b.shape == tuple(hw):
        return b
    img = Image.fromarray(b.astype(np.uint8) * 255, mode="L").resize((hw[1], hw[0]), Image.NEAREST)
    return np.asarray(img) > 0


def evaluate(
    image_scores,
    labels,
    maps=None,
    masks=None,
    eval_size: int | tuple[int, int] = 256,
    fpr_limit: float = 0.3,
) -> dict[str, float]:
    """All seven metrics of one category (keys: :data:`METRIC_NAMES`).

    Args:
        image_scores: [N] anomaly score per test image.
        labels: [N] 0 normal / 1 anomalous.
        maps: [N, H, W] array or a list of N 2-D maps (sizes may differ); None -> pixel metrics nan.
        masks: [N, H, W] array or a list of N masks or None entries. A None entry of a normal image means
            an all-zero mask; a None entry of an anomalous image (no ground truth) excludes that image
            from the pixel metrics. ``masks=None`` -> pixel metrics nan.
        eval_size: evaluation resolution, int (square) or (height, width). Maps are resized bilinearly,
            masks with nearest neighbour, each image separately.

    Example:
        >>> import numpy as np
        >>> maps = np.zeros((2, 8, 8), np.float32); maps[1, 2:4, 2:4] = 1
        >>> res = evaluate([0.0, 1.0], [0, 1], maps, [None, maps[1] > 0], eval_size=8)
        >>> res["image_auroc"], res["pixel_aupro"]
        (1.0, 1.0)
    """
    scores, y = _scores_labels(image_scores, labels)
    rank = _rank(scores[y], scores[~y])
    result = {"image_auroc": _auroc(rank), "image_ap": _ap(rank), "image_f1max": _f1max(rank)}
    nan_pixels = dict.fromkeys(METRIC_NAMES[3:], float("nan"))
    if maps is None or masks is None:
        return result | nan_pixels
    if len(maps) != scores.size or len(masks) != scores.size:
        raise ConfigError(f"need one map and one mask entry per image: {scores.size} scores, "
                          f"{len(maps)} maps, {len(masks)} masks")
    hw = _target_hw(eval_size)
    kept = [i for i in range(scores.size) if not (y[i] and masks[i] is None)]
    if not kept:
        return result | nan_pixels
    stacked_maps = np.empty((len(kept), *hw), dtype=np.float32)  # [N_kept, h, w]
    stacked_masks = np.zeros((len(kept), *hw), dtype=np.bool_)
    for j, i in enumerate(kept):
        amap = np.asarray(maps[i])
        if amap.ndim != 2:
            raise ConfigError(f"anomaly map {i} must be 2-D [H, W], got shape {amap.shape}")
        stacked_maps[j] = resize_map(amap, hw)
        if masks[i] is not None:
            mask = np.asarray(masks[i])
            if mask.ndim != 2:
                raise ConfigError(f"mask {i} must be 2-D [H, W], got shape {mask.shape}")
            stacked_masks[j] = resize_mask(mask, hw)
    return result | pixel_metrics(stacked_maps, stacked_masks, fpr_limit=fpr_limit)
