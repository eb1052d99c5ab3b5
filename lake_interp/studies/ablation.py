"""Ablation (claim 2): are the selected neurons causal for detection?

The detector reads one site and layer ``L`` (the default detector's deepest layer). Neurons are
ablated (``zero`` or ``mean`` over the support patches) in the forward pass at an ablation layer
``l'``:

* ``relation = "same"`` (``l' = L``): the detector's own selected neurons. For the detector fitted
  without ablation this is trivial (its inputs are overwritten), so it only calibrates the scale;
  the refitted detector shows whether the other neurons still carry the signal.
* ``relation = "earlier"`` (``l' < L``): neurons selected by sensitivity at ``l'`` (same site, same
  support); the effect must travel through the network to layer ``L``. This is the informative test.

Controls: as many random neurons (several seeds) and the bottom-K neurons at ``l'``. Two detectors:
``variant = "fixed"`` is fitted on clean support features and scores ablated test features;
``variant = "refit"`` is fitted with the ablation applied to support and test alike. The relative L2
change of the residual stream on normal test images at ``L`` and at the last block tells "it breaks
everything" from "it removes the anomaly signal".

Example:
    >>> from lake_interp import load_model
    >>> from lake_interp.data import load_demo_category
    >>> df = run([load_demo_category()], load_model("random-vit-tiny"), n_neurons=0,  # doctest: +SKIP
    ...          base=LakeConfig(image_size=32, layers=(1,), k_neurons=4))
    >>> float(df.d_image_auroc.abs().max())  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import Tensor
from tqdm.auto import tqdm

from lake_interp.data import Category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.selection import select_neurons
from lake_interp.errors import ConfigError
from lake_interp.interventions import NeuronSet, ablation_hook
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.studies.common import (
    DEFAULT_EVAL_SIZE,
    base_config,
    category_fields,
    detector_layer,
    evaluate_detector,
    extract_multi,
    input_size,
    load_test_data,
    single_layer,
    subsample_test,
)

METRICS = ("image_auroc", "pixel_aupro")


def default_ablate_layers(layer: int) -> tuple[int, ...]:
    """An earlier layer (three blocks before, clipped at 0) and the detector's own layer."""
    return tuple(sorted({max(0, layer - 3), layer}))


def relative_change(clean: Tensor, ablated: Tensor) -> float:
    """Mean over tokens of ``||ablated - clean|| / ||clean||``: ``[n, patches, d]`` pairs -> float."""
    num = (ablated.float() - clean.float()).norm(dim=-1)
    den = clean.float().norm(dim=-1).clamp_min(1e-12)
    return float((num / den).mean())


def _choose(scores: Tensor, n: int, neuron_set: str, seed: int) -> Tensor:
    if n == 0:
        return torch.empty(0, dtype=torch.long)
    return select_neurons(scores, min(n, len(scores)), neuron_set, seed)


def run(
    categories: Sequence[Category],
    model: HookedViT,
    shots: int = 4,
    seed: int = 0,
    sites: Sequence[str] = ("resid",),
    layer: int | None = None,
    ablate_layers: Sequence[int] | None = None,
    modes: Sequence[str] = ("zero", "mean"),
    neuron_sets: Sequence[str] = ("top", "random", "bottom"),
    random_seeds: Sequence[int] = (0, 1, 2),
    n_neurons: int | None = None,
    n_test_good: int | None = 40,
    n_test_defect: int | None = 40,
    test_seed: int = 0,
    base: LakeConfig | None = None,
    eval_size: int = DEFAULT_EVAL_SIZE,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per category x site x ablation layer x mode x neuron set x set seed x variant.

    Args:
        layer: the detector's layer ``L`` (default: the default detector's deepest layer).
        ablate_layers: ablation layers (default ``(L - 3, L)``); each must be <= ``L``.
        n_neurons: neurons ablated per set (default: the detector's K); 0 ablates nothing (a check).
        n_test_good / n_test_defect: seeded test subset (None = all), to bound the run time.

    Columns: model, dataset, category, site, detector_layer, ablate_layer, relation (same|earlier), mode,
    neuron_set, set_seed, n_ablated, frac_of_detector_set (share of the ablated neurons in the
    detector's own selected set), variant (fixed|refit), image_auroc, pixel_aupro, base_* (clean),
    d_image_auroc / d_pixel_aupro (clean - ablated; positive = detection got worse), refit_jaccard
    (selected set of the refitted detector vs the clean one), normal_change_detector_layer,
    normal_change_last_layer (relative L2 change of the residual stream on normal test images),
    n_test, k, seed, seconds.
    """
    cfg = base_config(model, base)
    L = detector_layer(cfg) if layer is None else int(layer)
    last = model.cfg.n_layers - 1
    ablate = tuple(sorted({int(x) for x in (ablate_layers if ablate_layers is not None else default_ablate_layers(L))}))
    if any(not 0 <= x <= L for x in ablate):
        raise ConfigError(f"ablation layers {ablate} must lie in [0, detector layer {L}]")
    for mode in modes:
        if mode not in ("zero", "mean"):
            raise ConfigError(f"ablation mode must be 'zero' or 'mean', got {mode!r}")
    size = input_size(model, cfg)
    rows = []
    for category in categories:
        sub = subsample_test(category, n_test_good, n_test_defect, test_seed)
        support = sample_support(category, shots, seed)
        support_paths = [s.path for s in support]
        for site in sites:
            det_cfg = single_layer(cfg, site, L)
            width = model.cfg.site_width(site)
            n = det_cfg.n_selected(width) if n_neurons is None else int(n_neurons)
            wanted = _wanted(site, set(ablate) | {L}, (L, last))
            clean_support = extract_multi(model, support_paths, wanted, size, cfg.batch_size)
            test = load_test_data(sub, model, wanted, size, eval_size, cfg.batch_size, progress=progress)
            normal = np.flatnonzero(test.labels == 0)
            fixed = LakeDetector(det_cfg, model).fit_features(clean_support.features(site, (L,)))
            base_metrics = evaluate_detector(fixed, test.features.features(site, (L,)), test, eval_size)
            detector_set = set(fixed.layers[L].indices.tolist())
            jobs = []
            for l_abl in ablate:
                probe = LakeDetector(single_layer(det_cfg, site, l_abl), model).fit_features(clean_support.features(site, (l_abl,)))
                scores = probe.layers[l_abl].scores
                reference = clean_support.acts[(site, l_abl)].float().mean(dim=(0, 1))  # [width]
                for neuron_set in neuron_sets:
                    for set_seed in (random_seeds if neuron_set == "random" else (-1,)):
                        idx = _choose(scores, n, neuron_set, max(set_seed, 0))
                        for mode in modes:
                            jobs.append((l_abl, neuron_set, set_seed, idx, mode, reference))
            for l_abl, neuron_set, set_seed, idx, mode, reference in tqdm(
                jobs, desc=f"{category.name} {site} ablations", disable=not progress
            ):
                start = time.perf_counter()
                neurons = NeuronSet(site, l_abl, tuple(idx.tolist())).validate(model)
                hooks = [ablation_hook(neurons, mode, reference if mode == "mean" else None)]
                abl_support = extract_multi(model, support_paths, _wanted(site, {L}, (L, last)), size, cfg.batch_size, hooks)
                abl_test = extract_multi(model, [s.path for s in sub.test], _wanted(site, {L}, (L, last)), size,
                                         cfg.batch_size, hooks)
                refit = LakeDetector(det_cfg, model).fit_features(abl_support.features(site, (L,)))
                refit_set = set(refit.layers[L].indices.tolist())
                change = {
                    "normal_change_detector_layer": relative_change(
                        test.features.acts[("resid", L)][normal], abl_test.acts[("resid", L)][normal]),
                    "normal_change_last_layer": relative_change(
                        test.features.acts[("resid", last)][normal], abl_test.acts[("resid", last)][normal]),
                }
                for variant, detector in (("fixed", fixed), ("refit", refit)):
                    metrics = evaluate_detector(detector, abl_test.features(site, (L,)), test, eval_size)
                    rows.append({
                        **category_fields(category, model), "site": site, "detector_layer": L, "ablate_layer": l_abl,
                        "relation": "same" if l_abl == L else "earlier", "mode": mode, "neuron_set": neuron_set,
                        "set_seed": set_seed, "n_ablated": len(idx),
                        "frac_of_detector_set": (len(set(idx.tolist()) & detector_set) / len(idx)) if len(idx) and l_abl == L else 0.0,
                        "variant": variant,
                        **{m: metrics[m] for m in METRICS},
                        **{f"base_{m}": base_metrics[m] for m in METRICS},
                        **{f"d_{m}": base_metrics[m] - metrics[m] for m in METRICS},
                        "refit_jaccard": len(refit_set & detector_set) / len(refit_set | detector_set),
                        **change, "n_test": len(test.labels), "k": shots, "seed": seed,
                        "seconds": round(time.perf_counter() - start, 2),
                    })
            del test
    return pd.DataFrame(rows)


def _wanted(site: str, layers: set[int], resid: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Hook points to capture: the site's layers plus residual stream layers (merged when site is resid)."""
    if site == "resid":
        return {"resid": tuple(sorted(set(layers) | set(resid)))}
    return {site: tuple(sorted(layers)), "resid": tuple(sorted(set(resid)))}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over random seeds: drop in image AUROC / AUPRO and normal-feature change per condition."""
    keys = ["dataset", "category", "site", "detector_layer", "ablate_layer", "relation", "mode", "neuron_set", "variant"]
    cols = ["d_image_auroc", "d_pixel_aupro", "normal_change_detector_layer", "normal_change_last_layer",
            "base_image_auroc", "base_pixel_aupro", "image_auroc", "pixel_aupro", "refit_jaccard"]
    return df.groupby(keys)[cols].mean().reset_index()


def figures(df: pd.DataFrame) -> dict[str, go.Figure]:
    """Per category (rows) and site (columns): drop in detection per ablated set, for each ablation
    layer, mode and detector variant; and detection drop vs the change of normal features."""
    from plotly.subplots import make_subplots

    figs: dict[str, go.Figure] = {}
    s = summary(df)
    colours = {"top": "#d62728", "random": "#7f7f7f", "bottom": "#1f77b4"}
    cats = sorted(s.category.unique())
    sites = sorted(s.site.unique(), reverse=True)
    titles = [f"{c} / {site}" for c in cats for site in sites]
    for metric, label in (("d_image_auroc", "drop in image AUROC"), ("d_pixel_aupro", "drop in AUPRO")):
        fig = make_subplots(rows=len(cats), cols=len(sites), subplot_titles=titles, shared_yaxes=True)
        for i, c in enumerate(cats):
            for j, site in enumerate(sites):
                part = s[(s.category == c) & (s.site == site)]
                for neuron_set in [n for n in ("top", "random", "bottom") if n in set(part.neuron_set)]:
                    sub = part[part.neuron_set == neuron_set]
                    x = [f"L{r.ablate_layer} {r.mode} {r.variant}" for r in sub.itertuples()]
                    fig.add_trace(go.Bar(x=x, y=sub[metric], name=f"{neuron_set}-K", marker_color=colours[neuron_set],
                                         legendgroup=neuron_set, showlegend=i == 0 and j == 0), row=i + 1, col=j + 1)
                fig.update_xaxes(tickangle=-45, row=i + 1, col=j + 1)
        layer = int(s.detector_layer.iloc[0]) if len(s) else 0
        fig.update_layout(barmode="group", template="plotly_white", height=360 * len(cats) + 160,
                          title=f"Ablation at layer l', read at layer {layer}: {label} (clean - ablated; random = mean over seeds)")
        figs[f"ablation_{metric}"] = fig
    fig = go.Figure()
    for (neuron_set, relation), part in s[s.variant == "refit"].groupby(["neuron_set", "relation"]):
        fig.add_trace(go.Scatter(
            x=part.normal_change_last_layer, y=part.d_image_auroc, mode="markers",
            marker=dict(color=colours.get(neuron_set), symbol="circle" if relation == "earlier" else "diamond", size=10),
            name=f"{neuron_set}, {relation} layer",
            text=[f"{r.category} {r.site} L{r.ablate_layer} {r.mode}" for r in part.itertuples()],
        ))
    fig.update_layout(title="Refitted detector: detection drop vs change of normal features (last block)",
                      xaxis_title="relative L2 change of the residual stream on normal images (last block)",
                      yaxis_title="drop in image AUROC", template="plotly_white")
    figs["drop_vs_feature_change"] = fig
    return figs
