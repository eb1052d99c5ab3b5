"""Tests of lake_interp.metrics against independent computations and hand-derived values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from lake_interp.errors import ConfigError
from lake_interp.metrics import (
    METRIC_NAMES,
    aupro,
    evaluate,
    f1_max,
    image_ap,
    image_auroc,
    pixel_metrics,
    pro_curve,
    resize_map,
    resize_mask,
)


# ------------------------------------------------------------------ slow references, written from the definitions
def brute_f1max(scores, labels) -> float:
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    best = -1.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & labels)
        if pred.sum() == 0:
            continue  # precision undefined
        precision, recall = tp / pred.sum(), tp / labels.sum()
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        best = max(best, f1)
    return best


def reference_aupro(maps, masks, limit=0.3) -> float:
    """Official definition, one threshold at a time (slow)."""
    maps, masks = np.asarray(maps, float), np.asarray(masks, bool)
    regions = []
    for m, g in zip(maps, masks):
        lab, n = ndimage.label(g, structure=np.ones((3, 3)))
        regions += [m[lab == r] for r in range(1, n + 1)]
    outside = maps[~masks]
    points = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:  # all distinct thresholds, descending
        points.append((np.mean(outside >= t), np.mean([np.mean(r >= t) for r in regions])))
    points.append((1.0, 1.0))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= limit:
            break
        if x1 > limit:  # clip the segment at the limit by linear interpolation
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def _random_case(seed, n=4, h=12, w=14, levels=None):
    rng = np.random.default_rng(seed)
    maps = rng.random((n, h, w))
    if levels:
        maps = np.floor(maps * levels) / levels  # many ties
    masks = np.zeros((n, h, w), bool)
    for i in range(n - 1):  # last image normal
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            masks[i, y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
        maps[i][masks[i]] += rng.random() * 0.5
    return maps.astype(np.float32), masks


# ------------------------------------------------------------------ image level
@pytest.mark.parametrize("seed", range(6))
def test_image_metrics_match_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    labels = rng.integers(0, 2, n)
    labels[:2] = (0, 1)
    scores = rng.random(n) if seed % 2 else rng.integers(0, 5, n).astype(float)  # odd: continuous; even: ties
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert image_ap(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert f1_max(scores, labels) == pytest.approx(brute_f1max(scores, labels), abs=1e-12)


def test_image_metrics_hand_values():
    assert image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert image_auroc([1, 1, 1], [0, 1, 1]) == 0.5  # all tied
    assert image_ap([3, 2, 1], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)
    assert f1_max([3, 2, 1], [1, 0, 1]) == pytest.approx(0.8)  # threshold 1: P = 2/3, R = 1
    assert image_auroc([0.0, 1.0], [1, 0]) == 0.0


def test_degenerate_image_inputs():
    assert np.isnan(image_auroc([0.1, 0.2], [0, 0]))
    assert np.isnan(image_auroc([0.1, 0.2], [1, 1]))
    assert np.isnan(image_ap([0.1, 0.2], [0, 0])) and np.isnan(f1_max([0.1, 0.2], [0, 0]))
    assert image_ap([0.1, 0.2], [1, 1]) == 1.0
    with pytest.raises(ConfigError, match="length"):
        image_auroc([0.1, 0.2], [0])
    with pytest.raises(ConfigError, match="labels"):
        image_auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ConfigError, match="NaN"):
        image_auroc([np.nan, 0.2], [0, 1])


# ------------------------------------------------------------------ pixel level
@pytest.mark.parametrize(("seed", "levels"), [(0, None), (1, None), (2, 5), (3, 3), (4, 20)])
def test_pixel_metrics_match_references(seed, levels):
    maps, masks = _random_case(seed, levels=levels)
    result = pixel_metrics(maps, masks)
    flat_s, flat_y = maps.ravel(), masks.ravel()
    assert result["pixel_auroc"] == pytest.approx(roc_auc_score(flat_y, flat_s), abs=1e-10)
    assert result["pixel_ap"] == pytest.approx(average_precision_score(flat_y, flat_s), abs=1e-10)
    assert result["pixel_f1max"] == pytest.approx(brute_f1max(flat_s, flat_y), abs=1e-10)
    assert result["pixel_aupro"] == pytest.approx(reference_aupro(maps, masks), abs=1e-9)
    for limit in (0.05, 0.3, 1.0):
        assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(reference_aupro(maps, masks, limit), abs=1e-9)


def test_aupro_perfect_and_inverted():
    maps, masks = _random_case(7)
    perfect = masks.astype(np.float32)
    assert aupro(perfect, masks) == pytest.approx(1.0)
    assert pixel_metrics(perfect, masks) == pytest.approx(
        {"pixel_auroc": 1.0, "pixel_ap": 1.0, "pixel_f1max": 1.0, "pixel_aupro": 1.0})
    assert aupro(1.0 - perfect, masks) == pytest.approx(0.0)


def test_aupro_region_mean_and_8_connectivity():
    # region A: 2 diagonal pixels (one region if 8-connected) with one detected; region B: 8 pixels, all detected.
    # PRO plateau = mean(1/2, 1) = 0.75 (pixel recall would be 9/10; 4-connectivity would give 2/3).
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True
    masks[0, 5:7, 3:7] = True
    maps = np.zeros((1, 10, 10), np.float32)
    maps[0, 0, 0] = 1.0
    maps[0, 5:7, 3:7] = 1.0
    maps[0][~masks[0]] = 0.5  # every outside pixel between detected and missed scores
    # curve: (0,0) -> (0, 0.75) -> (1, 0.75) -> (1, 1): area up to 0.3 = 0.75
    assert aupro(maps, masks) == pytest.approx(0.75)
    fpr, pro = pro_curve(maps, masks)
    assert fpr[0] == 0 and pro[0] == 0 and fpr[-1] == 1 and pro[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)


def test_aupro_interpolates_at_limit():
    # one region of 10 pixels tied with half of the 100 outside pixels at 0.5; the rest at 0
    masks = np.zeros((1, 11, 10), bool)
    masks[0, 0] = True
    maps = np.zeros((1, 11, 10), np.float32)
    maps[0, :6] = 0.5  # row 0 (the region) + 50 outside pixels
    # curve (0,0) -> (0.5, 1) -> (1, 1): PRO(0.3) = 0.6, area = 0.09, / 0.3 = 0.3
    assert aupro(maps, masks) == pytest.approx(0.3)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.75)


def test_aupro_counts_normal_images_in_fpr():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 2:4, 2:4] = True
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, 2:4, 2:4] = 0.5
    maps[1, :4] = 1.0  # normal image: 32 of the 124 outside pixels score above the region
    expected = reference_aupro(maps, masks)
    assert expected < 1.0
    assert aupro(maps, masks) == pytest.approx(expected)


def test_pixel_degenerate_and_bad_inputs():
    maps = np.random.default_rng(0).random((2, 6, 6)).astype(np.float32)
    no_defect = np.zeros((2, 6, 6), bool)
    result = pixel_metrics(maps, no_defect)
    assert all(np.isnan(v) for v in result.values())
    assert np.isnan(aupro(maps, no_defect))
    with pytest.raises(ConfigError, match="equal shape"):
        pixel_metrics(maps, no_defect[:, :5])
    bad = maps.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ConfigError, match="infinite"):
        aupro(bad, no_defect)
    with pytest.raises(ConfigError, match="fpr_limit"):
        aupro(maps, no_defect, fpr_limit=0)
    with pytest.raises(ConfigError, match="region"):
        pro_curve(maps, no_defect)


# ------------------------------------------------------------------ evaluate
def test_evaluate_same_size_equals_parts():
    maps, masks = _random_case(11, n=5)
    labels = masks.reshape(5, -1).any(1).astype(int)
    scores = maps.reshape(5, -1).max(1)
    res = evaluate(scores, labels, maps, masks, eval_size=(12, 14))
    assert set(res) == set(METRIC_NAMES)
    assert res["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert res["image_f1max"] == pytest.approx(brute_f1max(scores, labels))
    for key, value in pixel_metrics(maps, masks).items():
        assert res[key] == pytest.approx(value)


def test_evaluate_excludes_maskless_and_zero_fills_normals():
    maps, masks = _random_case(12, n=4)
    labels = np.array([1, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    mask_list = [masks[0], None, masks[2], None]  # image 1: defective without mask; image 3: normal
    res = evaluate(scores, labels, maps, mask_list, eval_size=(12, 14))
    keep = [0, 2, 3]
    expected = pixel_metrics(maps[keep], masks[keep])
    for key, value in expected.items():
        assert res[key] == pytest.approx(value)
    assert res["image_auroc"] == pytest.approx(1.0)


def test_evaluate_resizes_maps_and_masks():
    rng = np.random.default_rng(3)
    big_mask = np.zeros((64, 64), bool)
    big_mask[10:30, 20:44] = True
    first = rng.random((8, 8)).astype(np.float32)
    small_map = rng.random((16, 16)).astype(np.float32)
    small_map[3:7, 5:11] += 1.0
    res = evaluate([0.2, 0.9], [0, 1], [first, small_map], [None, big_mask], eval_size=32)
    masks = np.stack([np.zeros((32, 32), bool), resize_mask(big_mask, (32, 32))])
    np.testing.assert_array_equal(masks[1], big_mask[::2, ::2])  # nearest neighbour at half size
    maps = np.stack([resize_map(first, (32, 32)), resize_map(small_map, (32, 32))])
    for key, value in pixel_metrics(maps, masks).items():
        assert res[key] == pytest.approx(value)
    assert 0.9 < res["pixel_auroc"] <= 1.0  # the blob lands on the mask after both resizes


def test_resize_helpers():
    np.testing.assert_allclose(resize_map(np.full((7, 9), 2.5, np.float32), (20, 30)), 2.5, rtol=1e-6)
    blob = np.zeros((40, 40), np.float32)
    blob[20:30, 0:10] = 1.0
    small = resize_map(blob, (20, 20))
    assert small.shape == (20, 20) and small.dtype == np.float32
    assert np.unravel_index(np.argmax(small), small.shape)[0] in range(10, 15)
    assert resize_mask(np.array([[0, 3], [0, 0]]), (4, 4)).sum() == 4
    assert resize_mask(np.ones((5, 7)), (5, 7)).dtype == np.bool_


def test_evaluate_without_pixels_and_degenerate():
    res = evaluate([0.1, 0.5, 0.7], [0, 1, 1])
    assert res["image_auroc"] == 1.0
    assert all(np.isnan(res[k]) for k in METRIC_NAMES[3:])
    single = evaluate([0.1, 0.5], [0, 0], np.zeros((2, 4, 4)), [None, None], eval_size=4)
    assert all(np.isnan(v) for v in single.values())  # one class, no region: all undefined, no crash
    maskless = evaluate([0.1, 0.5], [0, 1], np.zeros((2, 4, 4)), [None, None], eval_size=4)
    assert np.isnan(maskless["pixel_aupro"]) and maskless["image_auroc"] == 1.0
    with pytest.raises(ConfigError, match="one map"):
        evaluate([0.1, 0.5], [0, 1], np.zeros((1, 4, 4)), [None, None])
    with pytest.raises(ConfigError, match="eval_size"):
        evaluate([0.1, 0.5], [0, 1], np.zeros((2, 4, 4)), [None, None], eval_size="big")
    with pytest.raises(ConfigError, match="2-D"):
        evaluate([0.1, 0.5], [0, 1], np.zeros((2, 4, 4, 1)), [None, None])
