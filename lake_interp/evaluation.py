"""The few-shot evaluation harness: every method on the same features, one row per
category x method x k x seed.

Test images are run through the backbone once per category; every (k, seed) draw runs its k support
images once, and every method (``lake``, ``knn-all``, ``random-k``, ``bottom-k``, ...) is fitted on those
same features, so comparisons are fair and cheap.

Example:
    >>> from lake_interp.detector import LakeConfig
    >>> from lake_interp.data import load_demo_category
    >>> rows = evaluate_category(load_demo_category(), {"lake": LakeConfig()}, shots=[1], seeds=[0])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from lake_interp.data import Category, Sample, load_sample_mask, sample_support, support_names
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.features import Features
from lake_interp.metrics import evaluate, resize_mask
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.results import make_row


@dataclass
class TestSet:
    """Test features of one category, with labels and masks at the evaluation resolution."""

    features: Features
    labels: np.ndarray  # [n]
    masks: list[np.ndarray | None]  # [eval, eval] bool, None for defective images without a mask
    seconds: float


def load_eval_masks(
    samples: Sequence[Sample], sizes: Sequence[tuple[int, int]], eval_size: int
) -> list[np.ndarray | None]:
    """Ground truth of each sample (image ``(height, width)`` in ``sizes``) at ``eval_size`` x ``eval_size``;
    None for a defective image without a mask (excluded from pixel metrics)."""
    masks: list[np.ndarray | None] = []
    for sample, (height, width) in zip(samples, sizes):
        mask = load_sample_mask(sample, (width, height))
        masks.append(None if mask is None else resize_mask(mask, (eval_size, eval_size)))
    return masks


def load_test_set(category: Category, detector: LakeDetector, eval_size: int, progress: bool = True) -> TestSet:
    """Extract the features of every test image once and load its mask at ``eval_size``."""
    start = time.perf_counter()
    features = detector.extract([s.path for s in category.test], progress=progress, desc=f"{category.name} test")
    seconds = time.perf_counter() - start
    masks = load_eval_masks(category.test, features.sizes, eval_size)
    labels = np.array([s.label for s in category.test], dtype=np.int64)
    return TestSet(features, labels, masks, seconds)


def _feature_key(cfg: LakeConfig) -> tuple:
    return (cfg.site, cfg.layers, cfg.image_size, cfg.text_branch, cfg.text_layer, cfg.visual_branch)


def evaluate_category(
    category: Category,
    methods: Mapping[str, LakeConfig],
    shots: Sequence[int] = (1, 2, 4),
    seeds: Sequence[int] = (0, 1, 2),
    model: HookedViT | None = None,
    eval_size: int = 256,
    progress: bool = True,
    on_prediction=None,
) -> list[dict]:
    """Evaluate ``methods`` (name -> config) on ``category``; returns result rows (``results`` schema).

    ``random-k``-style methods draw their neurons with ``selection_seed = seed``. ``on_prediction``,
    if given, is called as ``fn(method, k, seed, prediction, test_set)`` (e.g. to save overlays).
    """
    if model is None:
        from lake_interp.models.registry import load_model

        model = load_model(next(iter(methods.values())).model)
    test_sets: dict[tuple, TestSet] = {}
    rows = []
    draws = [(k, seed) for k in shots for seed in seeds]
    for k, seed in tqdm(draws, desc=f"{category.name} k x seed", disable=not progress):
        support = sample_support(category, k, seed)
        names = support_names(support, category)
        support_feats: dict[tuple, tuple[Features, float]] = {}
        for method, base_cfg in methods.items():
            cfg = base_cfg.replace(selection_seed=seed) if base_cfg.selection == "random" else base_cfg
            detector = LakeDetector(cfg, model)
            key = _feature_key(cfg)
            if key not in test_sets:
                test_sets[key] = load_test_set(category, detector, eval_size, progress)
            if key not in support_feats:
                start = time.perf_counter()
                support_feats[key] = (detector.extract([s.path for s in support]), time.perf_counter() - start)
            feats, extract_s = support_feats[key]
            start = time.perf_counter()
            detector.fit_features(feats, object_name=category.name)
            fit_s = extract_s + time.perf_counter() - start
            test = test_sets[key]
            start = time.perf_counter()
            prediction = detector.predict_features(test.features, output_size=(eval_size, eval_size))
            score_s = time.perf_counter() - start
            metrics = evaluate(prediction.scores, test.labels, prediction.maps, test.masks, eval_size=eval_size)
            if on_prediction is not None:
                on_prediction(method, k, seed, prediction, test)
            n_neurons = cfg.n_selected(model.cfg.site_width(cfg.site)) if cfg.visual_branch else None
            rows.append(
                make_row(
                    dataset=category.dataset,
                    category=category.name,
                    model=model.cfg.description,
                    method=method,
                    image_size=cfg.image_size,
                    eval_size=eval_size,
                    sigma=cfg.sigma,
                    score_rule=cfg.score_rule,
                    k=k,
                    seed=seed,
                    support_files=names,
                    layer="+".join(str(layer) for layer in cfg.layers) if cfg.visual_branch else None,
                    site=cfg.site if cfg.visual_branch else None,
                    n_neurons=n_neurons,
                    text_branch=detector.text_branch_status,
                    fit_seconds=fit_s,
                    predict_ms_per_image=1000.0 * (test.seconds + score_s) / len(test.labels),
                    **metrics,
                )
            )
    return rows
