"""Overlap (claim 3): are the selected neurons shared across categories, data sets and support draws?

For every category, site, layer, k and support seed the detector's selected set is computed (one
forward pass per distinct support image, all sites and layers at once). Pairs of sets are compared
by Jaccard index: different support draws of one category (``comparison = "draws"``) and different
categories with the same (k, seed) (``"categories"``; ``"datasets"`` when the two categories come
from different data sets). The chance level is the expected Jaccard index of two random K-subsets
of the site's width. Universal neurons are those selected in every draw of every category.

Example:
    >>> from lake_interp import load_model
    >>> from lake_interp.data import load_demo_category
    >>> sel = collect_selections([load_demo_category()], load_model("random-vit-tiny"), shots=(2,), seeds=(0, 1),  # doctest: +SKIP
    ...                          base=LakeConfig(image_size=32, k_neurons=4))
    >>> jaccard_pairs(sel).comparison.unique()  # doctest: +SKIP
    array(['draws'], dtype=object)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from tqdm.auto import tqdm

from lake_interp.data import Category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.studies.common import base_config, extract_multi, input_size, single_layer


def expected_random_jaccard(k: int, width: int) -> float:
    """Expected Jaccard index of two independent uniformly random ``k``-subsets of ``width`` items."""
    if k >= width:
        return 1.0
    # |A & B| is hypergeometric; E[J] = sum_i P(i) * i / (2k - i)
    from scipy.stats import hypergeom

    i = np.arange(0, k + 1)
    p = hypergeom(width, k, k).pmf(i)
    return float((p * i / (2 * k - i)).sum())


def collect_selections(
    categories: Sequence[Category],
    model: HookedViT,
    shots: Sequence[int] = (1, 4),
    seeds: Sequence[int] = tuple(range(10)),
    sites: Sequence[str] = ("resid", "mlp"),
    layers: Sequence[int] | None = None,
    base: LakeConfig | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Selected sets as a long table: one row per category x site x layer x k x seed x selected neuron.

    Columns: model, dataset, category, site, layer, width, k, seed, neuron, rank (0 = most sensitive),
    sensitivity.
    """
    cfg = base_config(model, base)
    layers = tuple(range(model.cfg.n_layers)) if layers is None else tuple(sorted({int(x) for x in layers}))
    size = input_size(model, cfg)
    rows = []
    for category in categories:
        draws = {(int(k), int(s)): sample_support(category, int(k), int(s)) for k in shots for s in seeds}
        unique = sorted({sample.path for draw in draws.values() for sample in draw})
        feats = extract_multi(model, unique, {site: layers for site in sites}, size, cfg.batch_size,
                              progress=progress, desc=f"{category.name} support images")
        position = {path: i for i, path in enumerate(unique)}
        for (k, s), draw in tqdm(draws.items(), desc=f"{category.name} draws", disable=not progress):
            sub = feats.subset([position[sample.path] for sample in draw])
            for site in sites:
                width = model.cfg.site_width(site)
                for layer in layers:
                    det = LakeDetector(single_layer(cfg, site, layer), model).fit_features(sub.features(site, (layer,)))
                    state = det.layers[layer]
                    chosen = state.indices.tolist()
                    for rank, neuron in enumerate(chosen):
                        rows.append({
                            "model": model.cfg.description, "dataset": category.dataset, "category": category.name,
                            "site": site, "layer": layer, "width": width, "k": k, "seed": s,
                            "neuron": int(neuron), "rank": rank, "sensitivity": float(state.scores[neuron]),
                        })
    return pd.DataFrame(rows)


def jaccard_pairs(selections: pd.DataFrame) -> pd.DataFrame:
    """Pairwise Jaccard indices of selected sets.

    Columns: site, layer, k, comparison (draws|categories|datasets), a, b (``dataset/category#seed``),
    n_selected, width, jaccard, chance (expected Jaccard of random sets of the same size).
    """
    sets = {
        key: frozenset(part.neuron.tolist())
        for key, part in selections.groupby(["site", "layer", "k", "dataset", "category", "seed"])
    }
    rows = []
    widths = selections.groupby("site").width.first().to_dict()
    grouped: dict[tuple, list[tuple]] = {}
    for key in sets:
        grouped.setdefault(key[:3], []).append(key)
    chance_cache: dict[tuple[int, int], float] = {}
    for (site, layer, k), keys in grouped.items():
        for a, b in itertools.combinations(sorted(keys), 2):
            same_cat = a[3:5] == b[3:5]
            if same_cat:
                comparison = "draws"
            elif a[5] != b[5]:
                continue  # across categories: compare the same (k, seed) only
            else:
                comparison = "categories" if a[3] == b[3] else "datasets"
            sa, sb = sets[a], sets[b]
            n = len(sa)
            width = int(widths[site])
            if (n, width) not in chance_cache:
                chance_cache[(n, width)] = expected_random_jaccard(n, width)
            rows.append({
                "site": site, "layer": int(layer), "k": int(k), "comparison": comparison,
                "a": f"{a[3]}/{a[4]}#{a[5]}", "b": f"{b[3]}/{b[4]}#{b[5]}",
                "n_selected": n, "width": width, "jaccard": len(sa & sb) / len(sa | sb),
                "chance": chance_cache[(n, width)],
            })
    return pd.DataFrame(rows)


def universal_neurons(selections: pd.DataFrame) -> pd.DataFrame:
    """Neurons selected in every draw, per category and across all categories.

    Columns: site, layer, k, scope (``dataset/category`` or ``all categories``), n_draws, n_universal,
    neurons (space-separated indices, by index).
    """
    rows = []
    for (site, layer, k), part in selections.groupby(["site", "layer", "k"]):
        scopes = [(f"{d}/{c}", g) for (d, c), g in part.groupby(["dataset", "category"])]
        if part.category.nunique() > 1 or part.dataset.nunique() > 1:
            scopes.append(("all categories", part))
        for scope, group in scopes:
            draws = group.groupby(["dataset", "category", "seed"]).neuron.apply(frozenset).tolist()
            common = sorted(frozenset.intersection(*draws)) if draws else []
            rows.append({"site": site, "layer": int(layer), "k": int(k), "scope": scope, "n_draws": len(draws),
                         "n_universal": len(common), "neurons": " ".join(map(str, common))})
    return pd.DataFrame(rows)


def run(
    categories: Sequence[Category],
    model: HookedViT,
    shots: Sequence[int] = (1, 4),
    seeds: Sequence[int] = tuple(range(10)),
    sites: Sequence[str] = ("resid", "mlp"),
    layers: Sequence[int] | None = None,
    base: LakeConfig | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Pairwise Jaccard table (see :func:`jaccard_pairs`) of the selections of :func:`collect_selections`."""
    return jaccard_pairs(collect_selections(categories, model, shots, seeds, sites, layers, base, progress))


def figures(df: pd.DataFrame) -> dict[str, go.Figure]:
    """Mean Jaccard per layer for each comparison, with the chance level."""
    figs: dict[str, go.Figure] = {}
    colours = {"draws": "#d62728", "categories": "#1f77b4", "datasets": "#9467bd"}
    for site, part in df.groupby("site"):
        fig = go.Figure()
        agg = part.groupby(["k", "comparison", "layer"]).jaccard.agg(["mean", "std"]).reset_index()
        for (k, comparison), sub in agg.groupby(["k", "comparison"]):
            fig.add_trace(go.Scatter(
                x=sub.layer, y=sub["mean"], error_y=dict(type="data", array=sub["std"].fillna(0)),
                mode="lines+markers", name=f"{comparison}, k={k}",
                line=dict(color=colours.get(comparison), dash="solid" if k == part.k.max() else "dot"),
            ))
        chance = part.groupby("layer").chance.mean()
        fig.add_trace(go.Scatter(x=chance.index, y=chance.values, mode="lines", name="chance (random sets)",
                                 line=dict(color="black", dash="dash")))
        fig.update_layout(title=f"Overlap of selected sets ({site}): Jaccard index by layer", xaxis_title="layer",
                          yaxis_title="Jaccard index", yaxis_range=[0, 1], template="plotly_white")
        figs[f"jaccard_{site}"] = fig
    return figs
