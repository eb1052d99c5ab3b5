"""Robustness (claim 4): one defective image in the k-shot support set.

For each seed the clean support set is ``sample_support(category, k, seed)``; the contaminated set
replaces its last image by one defective test image (seeded choice among defective images with a
mask), so both sets have k images. The contaminant is removed from the test set for both
conditions, so they are scored on the same images. Methods (default): ``lake`` (the default
detector), ``lake-mad`` (same, with the robust ``mad`` sensitivity criterion) and ``knn-all`` (all
channels). The contaminant's features are taken from the test pass (same image, same model).

Example:
    >>> from lake_interp import load_model
    >>> from lake_interp.data import load_demo_category
    >>> df = run([load_demo_category()], load_model("random-vit-tiny"), shots=2, seeds=(0,),  # doctest: +SKIP
    ...          methods={"lake": LakeConfig(image_size=32, layers=(1,), k_neurons=4)})
    >>> sorted(df.condition.unique())  # doctest: +SKIP
    ['clean', 'contaminated']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from tqdm.auto import tqdm

from lake_interp.data import Category, sample_support, support_names
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.errors import ConfigError
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.studies.common import (
    DEFAULT_EVAL_SIZE,
    category_fields,
    evaluate_detector,
    extract_multi,
    input_size,
    load_test_data,
)

METRICS = ("image_auroc", "pixel_aupro")


def default_methods(base: LakeConfig | None = None) -> dict[str, LakeConfig]:
    """``lake`` (default detector), ``lake-mad`` (robust criterion) and ``knn-all`` (all channels)."""
    cfg = base or LakeConfig()
    return {
        "lake": cfg,
        "lake-mad": cfg.replace(criterion="mad"),
        "knn-all": cfg.replace(selection="all"),
    }


def run(
    categories: Sequence[Category],
    model: HookedViT,
    shots: int = 4,
    seeds: Sequence[int] = tuple(range(5)),
    methods: Mapping[str, LakeConfig] | None = None,
    eval_size: int = DEFAULT_EVAL_SIZE,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per category x method x seed x condition (clean | contaminated).

    Columns: model, dataset, category, method, site, layers, k, seed, condition, contaminant
    (file relative to the category root), contaminant_defect, n_test, the metrics of
    :func:`lake_interp.metrics.evaluate`, selected_jaccard (selected set vs the clean one, for the
    contaminated rows; 1 for clean rows).
    """
    if shots < 2:
        raise ConfigError("robustness needs k >= 2 (one image is replaced by a defective one)")
    methods = {name: cfg.replace(model=model.cfg.name) for name, cfg in (methods or default_methods()).items()}
    first = next(iter(methods.values()))
    for cfg in methods.values():
        if (cfg.site, cfg.image_size) != (first.site, first.image_size):
            raise ConfigError("all methods of the robustness study must share site and image size")
    layers = tuple(sorted({layer for cfg in methods.values() for layer in cfg.layers}))
    size = input_size(model, first)
    rows = []
    for category in categories:
        test = load_test_data(category, model, {first.site: layers}, size, eval_size, first.batch_size, progress=progress)
        candidates = [i for i, s in enumerate(category.test) if s.label == 1 and s.mask_path is not None]
        if not candidates:
            raise ConfigError(f"{category.dataset}/{category.name} has no defective test image with a mask")
        for seed in tqdm(seeds, desc=f"{category.name} robustness", disable=not progress):
            support = sample_support(category, shots, int(seed))
            clean = extract_multi(model, [s.path for s in support], {first.site: layers}, size, first.batch_size)
            bad = int(np.random.default_rng([int(seed), 7]).choice(candidates))
            contaminated = clean.subset(range(shots - 1)).concat(test.features.subset([bad]))
            keep = [i for i in range(len(category.test)) if i != bad]
            kept = test.subset(keep)
            name = support_names([category.test[bad]], category)[0]
            for method, cfg in methods.items():
                sets = {}
                for condition, feats in (("clean", clean), ("contaminated", contaminated)):
                    det = LakeDetector(cfg, model).fit_features(feats.features(cfg.site, cfg.layers))
                    sets[condition] = {layer: set(state.indices.tolist()) for layer, state in det.layers.items()}
                    metrics = evaluate_detector(det, kept.features.features(cfg.site, cfg.layers), kept, eval_size)
                    jac = np.mean([len(sets[condition][l] & sets["clean"][l]) / len(sets[condition][l] | sets["clean"][l])
                                   for l in cfg.layers])
                    rows.append({
                        **category_fields(category, model), "method": method, "site": cfg.site,
                        "layers": "+".join(map(str, cfg.layers)), "k": shots, "seed": int(seed),
                        "condition": condition, "contaminant": name, "contaminant_defect": category.test[bad].defect,
                        "n_test": len(keep), **metrics, "selected_jaccard": float(jac),
                    })
        del test
    return pd.DataFrame(rows)


def drops(df: pd.DataFrame) -> pd.DataFrame:
    """Clean minus contaminated metric per category, method and seed (positive = contamination hurt)."""
    keys = ["dataset", "category", "method", "seed", "contaminant", "contaminant_defect"]
    wide = df.pivot_table(index=keys, columns="condition", values=list(METRICS) + ["selected_jaccard"]).reset_index()
    out = wide[keys].copy()
    out.columns = keys
    for metric in METRICS:
        out[f"clean_{metric}"] = wide[(metric, "clean")].to_numpy()
        out[f"contaminated_{metric}"] = wide[(metric, "contaminated")].to_numpy()
        out[f"drop_{metric}"] = out[f"clean_{metric}"] - out[f"contaminated_{metric}"]
    out["selected_jaccard"] = wide[("selected_jaccard", "contaminated")].to_numpy()
    return out


def figures(df: pd.DataFrame) -> dict[str, go.Figure]:
    """Per method: clean vs contaminated metrics (mean +- std over seeds) and per-seed drops."""
    figs: dict[str, go.Figure] = {}
    for metric, label in (("image_auroc", "image AUROC"), ("pixel_aupro", "AUPRO")):
        fig = go.Figure()
        agg = df.groupby(["category", "method", "condition"])[metric].agg(["mean", "std"]).reset_index()
        for condition, part in agg.groupby("condition"):
            fig.add_trace(go.Bar(
                x=[f"{r.category} {r.method}" for r in part.itertuples()], y=part["mean"],
                error_y=dict(type="data", array=part["std"].fillna(0)), name=condition,
                marker_color="#2ca02c" if condition == "clean" else "#d62728",
            ))
        fig.update_layout(barmode="group", title=f"One defective support image: {label} (mean +- std over seeds)",
                          yaxis_title=label, template="plotly_white")
        figs[f"robustness_{metric}"] = fig
    d = drops(df)
    fig = go.Figure()
    for method, part in d.groupby("method"):
        fig.add_trace(go.Box(x=part.category, y=part.drop_image_auroc, name=method, boxpoints="all"))
    fig.update_layout(boxmode="group", title="Drop in image AUROC per seed (clean - contaminated)",
                      yaxis_title="drop in image AUROC", template="plotly_white")
    figs["robustness_drops"] = fig
    return figs
