"""Computations behind the app's live panels (no Streamlit here, so they are unit-testable).

- :func:`ablation_sets` / :func:`extract_ablated`: the detector's forward pass with neurons ablated at
  its own site and layers (:mod:`lake_interp.interventions` hooks, under ``model.lock``).
- :func:`patch_defect_fraction`, :func:`neuron_values`, :func:`activation_table`: one neuron's values on
  normal and defect patches, in the normalised space the detector selects in.
- :func:`category_metrics`, :func:`selection_study`: metrics and a small live selection-control study.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((28, 28), bool); mask[:7, :7] = True
    >>> float(patch_defect_fraction(mask, (2, 2))[0, 0])
    0.25
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from lake_interp.detector import Features, LakeConfig, LakeDetector, Prediction
from lake_interp.detector.selection import normalize_tokens
from lake_interp.errors import ConfigError
from lake_interp.interventions import NeuronSet, ablation_hook, reference_mean
from lake_interp.metrics import evaluate
from lake_interp.studies.common import DEFECT_FRACTION

ABLATE_WHICH = ("selected", "random", "listed")
EVAL_SIZE = 256


@dataclass(frozen=True)
class AblationSpec:
    """What to ablate: ``which`` (``selected`` top-n by sensitivity, ``random`` n non-selected
    neurons per layer, or the ``listed`` neuron ``indices``), ``n`` per layer, ``mode`` (``zero`` or
    ``mean`` over the support patches), ``refit`` (also ablate in the support pass and refit the
    memory), ``seed`` (random draw)."""

    which: str = "selected"
    n: int = 100
    mode: str = "mean"
    refit: bool = False
    seed: int = 0
    indices: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.which not in ABLATE_WHICH:
            raise ConfigError(f"which must be one of {ABLATE_WHICH}, got {self.which!r}")
        if self.mode not in ("zero", "mean"):
            raise ConfigError(f"ablation mode must be 'zero' or 'mean', got {self.mode!r}")
        if self.n < 1 or (self.which == "listed" and not self.indices):
            raise ConfigError("ablate at least one neuron")


def ablation_sets(detector: LakeDetector, spec: AblationSpec) -> list[NeuronSet]:
    """The neurons to ablate, one :class:`NeuronSet` per detector layer."""
    sets = []
    site = detector.config.site
    width = detector.model.cfg.site_width(site)
    for layer, state in detector.layers.items():
        selected = state.indices.tolist()
        if spec.which == "listed":
            chosen = list(spec.indices)
        elif spec.which == "selected":
            order = torch.argsort(state.scores[state.indices], descending=True, stable=True).tolist()
            chosen = [selected[i] for i in order[: spec.n]]
        else:
            others = np.setdiff1d(np.arange(width), np.asarray(selected, dtype=np.int64))
            pool = others if len(others) >= spec.n else np.arange(width)
            rng = np.random.default_rng(spec.seed + 1000 * layer)
            chosen = sorted(int(i) for i in rng.choice(pool, size=min(spec.n, len(pool)), replace=False))
        sets.append(NeuronSet(site, layer, tuple(chosen)).validate(detector.model))
    return sets


def ablation_hooks(sets: Sequence[NeuronSet], mode: str, support: Features) -> list:
    """Forward hooks for ``sets``; ``mean`` uses each neuron's mean over the support patches."""
    hooks = []
    for neurons in sets:
        reference = None
        if mode == "mean":
            if neurons.layer not in support.layers:
                raise ConfigError(f"no support activations at layer {neurons.layer} for mean ablation")
            reference = reference_mean(support.layers[neurons.layer].float())  # [width]
        hooks.append(ablation_hook(neurons, mode, reference))
    return hooks


def extract_ablated(detector: LakeDetector, images: Sequence, hooks: list) -> Features:
    """``detector.extract(images)`` with ``hooks`` active (the model lock is held throughout)."""
    model = detector.model
    with model.lock, model.hooks(fwd_hooks=hooks):
        return detector.extract(list(images))


def patch_defect_fraction(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of defect pixels in each patch: ``bool [H, W] -> float [rows, cols]``.

    The image is squashed onto the patch grid like the model's preprocessing does (no crop).
    """
    rows, cols = grid
    image = Image.fromarray(np.asarray(mask, dtype=np.float32), mode="F")
    return np.asarray(image.resize((cols, rows), Image.Resampling.BOX), dtype=np.float64)


def neuron_values(feats: Features, layer: int, neuron: int, feature_norm: str) -> np.ndarray:
    """Values of one neuron on every patch, after the detector's per-token normalisation: ``[n, patches]``."""
    acts = feats.layers[layer].float()  # [n, patches, width]
    if not 0 <= neuron < acts.shape[-1]:
        raise ConfigError(f"neuron {neuron} out of range for width {acts.shape[-1]}")
    return normalize_tokens(acts, feature_norm)[..., neuron].numpy()


def activation_table(
    support: Features,
    test: Features,
    masks: Sequence[np.ndarray | None],
    labels: Sequence[int | None],
    layer: int,
    neuron: int,
    feature_norm: str,
    defect_fraction: float = DEFECT_FRACTION,
) -> pd.DataFrame:
    """One row per patch: ``value`` of the neuron and ``kind`` (``support (normal)``, ``test normal``,
    ``defect``; test rows also carry ``image``, ``image_index`` and the row-major ``patch`` index), with
    the atlas's patch classes: a defect patch has more than ``defect_fraction`` of its
    pixels in the mask; test-normal patches are those of normal images and defect-free patches of
    defective images; the rest, and defective images without a mask, are left out."""
    frames = [
        pd.DataFrame({"value": neuron_values(support, layer, neuron, feature_norm).ravel(), "kind": "support (normal)"})
    ]
    values = neuron_values(test, layer, neuron, feature_norm)  # [n, patches]
    for i, (mask, label) in enumerate(zip(masks, labels)):
        if label is None or (label == 1 and (mask is None or not mask.any())):
            continue
        fraction = patch_defect_fraction(mask, test.grid).ravel() if label == 1 else np.zeros(values.shape[1])
        kind = np.where(fraction > defect_fraction, "defect", np.where(fraction == 0, "test normal", ""))
        frame = pd.DataFrame(
            {
                "value": values[i],
                "kind": kind,
                "image": test.names[i],
                "image_index": i,
                "patch": np.arange(values.shape[1]),
            }
        )
        frames.append(frame[frame.kind != ""])
    return pd.concat(frames, ignore_index=True)


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d of ``a`` against ``b`` (pooled standard deviation); nan when either has < 2 values."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


def category_metrics(
    prediction: Prediction, labels: Sequence[int], masks: Sequence[np.ndarray | None]
) -> dict[str, float]:
    """The seven metrics of :func:`lake_interp.metrics.evaluate` at the harness's evaluation size."""
    return evaluate(
        prediction.scores, np.asarray(labels, dtype=np.int64), prediction.maps, list(masks), eval_size=EVAL_SIZE
    )


def selection_study(
    base: LakeConfig,
    model,
    k_values: Sequence[int],
    random_seeds: Sequence[int],
    support: Features,
    test: Features,
    labels: Sequence[int],
    masks: Sequence[np.ndarray | None],
    fields: dict[str, str],
    shots: int,
    seed: int,
    on_step: Callable[[int, int, str], None] | None = None,
) -> pd.DataFrame:
    """Selection controls on one site and layer (``base.site``, deepest of ``base.layers``): LAKE's top-K,
    bottom-K, K random neurons (one run per seed in ``random_seeds``) at each K, and all neurons.

    Rows follow :func:`lake_interp.studies.selection_controls.run` (so its ``figures`` draw them):
    ``fields`` (model, dataset, category), site, layer, width, selection, n_neurons, selection_seed,
    k, seed, the seven metrics, fit_score_s. ``on_step(done, total, label)`` reports progress.
    """
    import time

    site, layer = base.site, max(base.layers)
    width = model.cfg.site_width(site)
    single = base.replace(layers=(layer,), neuron_ratio=None)
    runs: list[tuple[str, int, int, LakeConfig]] = [("all", width, -1, single.replace(selection="all"))]
    for k in sorted({int(k) for k in k_values if 0 < int(k) < width}):
        runs.append(("top", k, -1, single.replace(selection="top", k_neurons=k)))
        runs.append(("bottom", k, -1, single.replace(selection="bottom", k_neurons=k)))
        runs += [
            ("random", k, int(s), single.replace(selection="random", k_neurons=k, selection_seed=int(s)))
            for s in random_seeds
        ]
    support_layer = Features(
        {layer: support.layers[layer]}, None, support.token_norms, support.grid, support.sizes, support.names
    )
    test_layer = Features({layer: test.layers[layer]}, None, test.token_norms, test.grid, test.sizes, test.names)
    rows = []
    for done, (selection, n, selection_seed, cfg) in enumerate(runs):
        if on_step is not None:
            on_step(
                done, len(runs), f"{selection} K={n}" + (f" (seed {selection_seed})" if selection_seed >= 0 else "")
            )
        start = time.perf_counter()
        detector = LakeDetector(cfg.replace(text_branch=False) if model.cfg.has_text else cfg, model)
        prediction = detector.fit_features(support_layer).predict_features(test_layer)
        metrics = category_metrics(prediction, labels, masks)
        rows.append(
            {
                **fields,
                "site": site,
                "layer": layer,
                "width": width,
                "selection": selection,
                "n_neurons": n,
                "selection_seed": selection_seed,
                "k": int(shots),
                "seed": int(seed),
                **metrics,
                "fit_score_s": round(time.perf_counter() - start, 3),
            }
        )
    if on_step is not None:
        on_step(len(runs), len(runs), "done")
    return pd.DataFrame(rows)
