"""Selection controls (claims 1 and 5): does choosing the top-K most sensitive neurons matter?

For every category, site and layer the detector is fitted on the same support features with the
LAKE selection (top-K by sensitivity), K random neurons (several seeds), the K least sensitive neurons
(bottom-K) and all neurons (plain nearest neighbour, as AnomalyDINO). A K sweep runs at the
``sweep_layers`` (default: the detector's layer); the other layers use the default K only. Test
features of all layers of a site are extracted in one forward pass per image.

Example:
    >>> from lake_interp import load_model
    >>> from lake_interp.data import load_demo_category
    >>> df = run([load_demo_category()], load_model("random-vit-tiny"), layers=(1,), k_values=(4,),  # doctest: +SKIP
    ...          random_seeds=(0,), base=LakeConfig(image_size=32))
    >>> sorted(df.selection.unique())  # doctest: +SKIP
    ['all', 'bottom', 'random', 'top']
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from tqdm.auto import tqdm

from lake_interp.data import Category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.errors import ConfigError
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.studies.common import (
    DEFAULT_EVAL_SIZE,
    base_config,
    category_fields,
    evaluate_detector,
    extract_multi,
    input_size,
    load_test_data,
    single_layer,
)

K_VALUES = (10, 25, 50, 100, 200, 400)
LAYERS = (3, 5, 7, 9, 11)
RANDOM_SEEDS = (0, 1, 2, 3, 4)


def _configs(cfg: LakeConfig, site: str, layer: int, width: int, k_values: Sequence[int], random_seeds: Sequence[int]):
    """(selection, K, selection_seed, config) of one site and layer; K >= width is the all-channel case."""
    out = [("all", width, -1, single_layer(cfg, site, layer, selection="all"))]
    for k in sorted({int(k) for k in k_values if 0 < int(k) < width}):
        out.append(("top", k, -1, single_layer(cfg, site, layer, selection="top", k_neurons=k)))
        out.append(("bottom", k, -1, single_layer(cfg, site, layer, selection="bottom", k_neurons=k)))
        for s in random_seeds:
            out.append(("random", k, int(s), single_layer(cfg, site, layer, selection="random", k_neurons=k, selection_seed=int(s))))
    return out


def run(
    categories: Sequence[Category],
    model: HookedViT,
    shots: Sequence[int] = (4,),
    seeds: Sequence[int] = (0,),
    sites: Sequence[str] = ("resid", "mlp"),
    layers: Sequence[int] = LAYERS,
    k_values: Sequence[int] = K_VALUES,
    random_seeds: Sequence[int] = RANDOM_SEEDS,
    sweep_layers: Sequence[int] | None = None,
    base: LakeConfig | None = None,
    eval_size: int = DEFAULT_EVAL_SIZE,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per category x site x layer x selection x K x random seed x (k, seed) draw.

    Args:
        layers: layers to compare (clipped to the model's depth).
        k_values: the K sweep (values >= the site width are the all-channel case and dropped).
        sweep_layers: layers that get the full K sweep (default: the default detector's deepest layer);
            the others use ``base.k_neurons`` only.
        base: detector options (default ``LakeConfig()``); only selection, K, site and layer vary.

    Columns: model, dataset, category, site, layer, width, selection (top|random|bottom|all),
    n_neurons, selection_seed (-1 unless random), k, seed, the seven metrics of
    :func:`lake_interp.metrics.evaluate`, fit_score_s.
    """
    cfg = base_config(model, base)
    layers = tuple(sorted({int(layer) for layer in layers if 0 <= int(layer) < model.cfg.n_layers}))
    if not layers:
        raise ConfigError(f"no valid layer in {layers} for a {model.cfg.n_layers}-block model")
    default_k = cfg.k_neurons
    sweep = set(sweep_layers) if sweep_layers is not None else {min(max(cfg.layers), model.cfg.n_layers - 1)}
    rows = []
    for category in categories:
        for site in sites:
            width = model.cfg.site_width(site)
            test = load_test_data(category, model, {site: layers}, input_size(model, cfg), eval_size,
                                  cfg.batch_size, progress=progress)
            for k in shots:
                for seed in seeds:
                    support = sample_support(category, int(k), int(seed))
                    sfeats = extract_multi(model, [s.path for s in support], {site: layers}, input_size(model, cfg), cfg.batch_size)
                    jobs = []
                    for layer in layers:
                        ks = k_values if layer in sweep else ([default_k] if default_k else [max(1, round(cfg.neuron_ratio * width))])
                        jobs += [(layer, *job) for job in _configs(cfg, site, layer, width, ks, random_seeds)]
                    desc = f"{category.name} {site} k={k} seed={seed}"
                    for layer, selection, n, sel_seed, layer_cfg in tqdm(jobs, desc=desc, disable=not progress):
                        start = time.perf_counter()
                        detector = LakeDetector(layer_cfg, model).fit_features(sfeats.features(site, (layer,)))
                        metrics = evaluate_detector(detector, test.features.features(site, (layer,)), test, eval_size)
                        rows.append({
                            **category_fields(category, model), "site": site, "layer": layer, "width": width,
                            "selection": selection, "n_neurons": n, "selection_seed": sel_seed,
                            "k": int(k), "seed": int(seed), **metrics,
                            "fit_score_s": round(time.perf_counter() - start, 3),
                        })
            del test
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame:
    """Mean (and std over random seeds and draws) of ``metric`` per category, site, layer, selection, K."""
    keys = ["dataset", "category", "site", "layer", "selection", "n_neurons"]
    out = df.groupby(keys)[metric].agg(["mean", "std", "count"]).reset_index()
    return out


def figures(df: pd.DataFrame) -> dict[str, go.Figure]:
    """K-sweep curves (image AUROC and AUPRO; one panel per category and site) at the sweep layers, and
    per-layer curves of top / random / bottom / all at the default K."""
    from plotly.subplots import make_subplots

    figs: dict[str, go.Figure] = {}
    colours = {"top": "#d62728", "random": "#7f7f7f", "bottom": "#1f77b4", "all": "#2ca02c"}
    panels = sorted({(r.category, r.site) for r in df[["category", "site"]].drop_duplicates().itertuples()})
    cats = sorted({c for c, _ in panels})
    sites = sorted({s for _, s in panels}, reverse=True)  # resid first
    counts = df[df.selection != "all"].groupby(["category", "site", "layer"]).n_neurons.nunique()
    sweep = {(c, s): sorted(l for (cc, ss, l), n in counts.items() if cc == c and ss == s and n > 1) for c, s in panels}
    default_k = _default_k(df[df.selection != "all"].n_neurons)
    titles = [f"{c} / {s}" for c in cats for s in sites]
    for metric, label in (("image_auroc", "image AUROC"), ("pixel_aupro", "AUPRO (FPR <= 0.3)")):
        fig = make_subplots(rows=len(cats), cols=len(sites), subplot_titles=titles, shared_yaxes=True)
        for i, c in enumerate(cats):
            for j, site in enumerate(sites):
                for layer in sweep.get((c, site), []):
                    part = df[(df.category == c) & (df.site == site) & (df.layer == layer)]
                    for selection in ("top", "random", "bottom"):
                        sub = part[part.selection == selection].groupby("n_neurons")[metric].agg(["mean", "std"]).reset_index()
                        fig.add_trace(go.Scatter(
                            x=sub.n_neurons, y=sub["mean"], mode="lines+markers", name=f"{selection}-K",
                            error_y=dict(type="data", array=sub["std"].fillna(0)) if selection == "random" else None,
                            line=dict(color=colours[selection]), legendgroup=selection, showlegend=i == 0 and j == 0,
                        ), row=i + 1, col=j + 1)
                    full = part[part.selection == "all"]
                    fig.add_trace(go.Scatter(
                        x=[part.n_neurons.min(), int(part.width.iloc[0])], y=[full[metric].mean()] * 2, mode="lines",
                        name="all channels", line=dict(color=colours["all"], dash="dash"), legendgroup="all",
                        showlegend=i == 0 and j == 0,
                    ), row=i + 1, col=j + 1)
                fig.update_xaxes(type="log", title_text="K" if i == len(cats) - 1 else None, row=i + 1, col=j + 1)
        layers = sorted({l for v in sweep.values() for l in v})
        if not layers:  # one K only (e.g. a run over support draws): no sweep to draw
            fig = None
        if fig is not None:
            fig.update_layout(title=f"K sweep at layer {', '.join(map(str, layers))}: {label} (random: mean +- std over seeds)",
                              template="plotly_white", height=320 * len(cats) + 120)
            figs[f"k_sweep_{metric}"] = fig

        fig = make_subplots(rows=len(cats), cols=len(sites), subplot_titles=titles, shared_yaxes=True)
        for i, c in enumerate(cats):
            for j, site in enumerate(sites):
                part = df[(df.category == c) & (df.site == site)]
                for selection in ("top", "random", "bottom", "all"):
                    sub = part[(part.selection == selection) & ((part.n_neurons == default_k) | (selection == "all"))]
                    agg = sub.groupby("layer")[metric].agg(["mean", "std"]).reset_index()
                    fig.add_trace(go.Scatter(
                        x=agg.layer, y=agg["mean"], mode="lines+markers",
                        name=f"{selection}-{default_k}" if selection != "all" else "all channels",
                        error_y=dict(type="data", array=agg["std"].fillna(0)) if selection == "random" else None,
                        line=dict(color=colours[selection], dash="dash" if selection == "all" else "solid"),
                        legendgroup=selection, showlegend=i == 0 and j == 0,
                    ), row=i + 1, col=j + 1)
                fig.update_xaxes(title_text="layer" if i == len(cats) - 1 else None, row=i + 1, col=j + 1)
        fig.update_layout(title=f"{label} by layer at K = {default_k} (random: mean +- std over seeds)",
                          template="plotly_white", height=320 * len(cats) + 120)
        figs[f"layers_{metric}"] = fig
    return figs


def _default_k(n_neurons: pd.Series) -> int:
    """The K present in every layer (the default K), else the most common one."""
    values = n_neurons.value_counts()
    return int(100 if 100 in values.index else values.index[0])


def headline(df: pd.DataFrame, k: int = 100) -> pd.DataFrame:
    """Per category, site and layer at K = ``k``: mean metric of top, random (mean over seeds), bottom and all."""
    rows = []
    for (dataset, category, site, layer), part in df.groupby(["dataset", "category", "site", "layer"]):
        row = {"dataset": dataset, "category": category, "site": site, "layer": layer}
        for metric in ("image_auroc", "pixel_aupro"):
            for selection in ("top", "random", "bottom"):
                sub = part[(part.selection == selection) & (part.n_neurons == k)][metric]
                row[f"{selection}_{metric}"] = float(sub.mean()) if len(sub) else np.nan
            row[f"all_{metric}"] = float(part[part.selection == "all"][metric].mean())
        rows.append(row)
    return pd.DataFrame(rows)
