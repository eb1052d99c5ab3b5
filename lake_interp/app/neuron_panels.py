"""The panels of the Neuron page: atlas rows of one neuron, and live measurements on the demo category."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from lake_interp.app import state, ui
from lake_interp.app.analysis import activation_table, category_metrics, cohens_d
from lake_interp.app.sources import ImageSet
from lake_interp.data import sample_support
from lake_interp.detector import LakeDetector, Prediction
from lake_interp.detector.selection import ranks

KIND_COLOURS = {"support (normal)": "#7f7f7f", "test normal": "#1f77b4", "defect": "#d62728", "normal": "#1f77b4"}
N_TOP = 8


@dataclass
class Live:
    """The neuron measured on the demo category with a detector reading at its site and layer."""

    model_name: str
    site: str
    layer: int
    neuron: int
    images: ImageSet
    cfg_json: str
    support: tuple[str, ...]
    detector: LakeDetector
    prediction: Prediction
    masks: list
    table: pd.DataFrame
    grid: tuple[int, int]

    @property
    def scores(self) -> np.ndarray:
        return self.detector.layers[self.layer].scores.numpy()

    @property
    def selected(self) -> bool:
        return self.neuron in self.detector.layers[self.layer].indices.tolist()


# ---------------------------------------------------------------------------------------------- data
def atlas_folders(model_name: str | None) -> list[Path]:
    """Atlas folders to look in: the one chosen on the Atlas page, the project atlas, the demo atlas."""
    candidates = [st.session_state.get(state.ATLAS_KEY), state.DEFAULT_ATLAS_DIR]
    if model_name:
        candidates.append(state.demo_atlas_dir(model_name))
    out: list[Path] = []
    for folder in candidates:
        if folder and state.is_atlas(folder) and Path(folder).resolve() not in [f.resolve() for f in out]:
            out.append(Path(folder))
    return out


def atlas_rows(model_name: str | None, description: str, site: str, layer: int, neuron: int) -> dict[str, pd.DataFrame]:
    """``{"atlas": rows, "patches": rows}`` of the neuron across all atlases of its model (first atlas wins
    for a category present in several)."""
    frames, patch_frames, seen = [], [], set()
    for folder in atlas_folders(model_name):
        atlas, patches, meta = state.read_atlas(folder)
        models = set(atlas.model.unique())
        if description in models:
            wanted = description
        elif model_name and meta.get("model_name") == model_name and meta.get("model") in models:
            wanted = meta["model"]
        else:
            continue
        rows = atlas[(atlas.model == wanted) & (atlas.site == site) & (atlas.layer == layer) & (atlas.neuron == neuron)]
        rows = rows[[(d, c) not in seen for d, c in zip(rows.dataset, rows.category)]]
        seen |= set(zip(rows.dataset, rows.category))
        frames.append(rows.assign(atlas=str(folder)))
        if patches is not None:
            mine = patches[
                (patches.model == wanted)
                & (patches.site == site)
                & (patches.layer == layer)
                & (patches.neuron == neuron)
            ]
            patch_frames.append(mine[mine.category.isin(rows.category)])
    empty = pd.DataFrame()
    return {
        "atlas": pd.concat(frames, ignore_index=True) if frames else empty,
        "patches": pd.concat(patch_frames, ignore_index=True) if patch_frames else empty,
    }


def live(model_name: str, model, site: str, layer: int, neuron: int) -> Live:
    images = state.demo_images()
    cfg = state.base_config(model_name, model)
    width = model.cfg.site_width(site)
    cfg = cfg.replace(site=site, layers=(layer,), k_neurons=min(cfg.k_neurons or width, width), object_name=images.name)
    support = tuple(str(s.path) for s in sample_support(images.category(), min(4, len(images.pool)), 0))
    cfg_json = state.config_json(cfg)
    with st.spinner(f"Running the demo category through {site} layer {layer} (cached after the first time) ..."):
        det = state.detector(model_name, cfg_json, support)
        prediction = state.prediction(model_name, cfg_json, support, images.test)
        feature_cfg = state.feature_json(cfg)
        test = state.features(model_name, feature_cfg, images.test)
        support_feats = state.features(model_name, feature_cfg, support)
    masks = state.test_masks(images, tuple(test.sizes))
    table = activation_table(support_feats, test, masks, images.labels, layer, neuron, cfg.feature_norm)
    return Live(model_name, site, layer, neuron, images, cfg_json, support, det, prediction, masks, table, test.grid)


# ---------------------------------------------------------------------------------------------- panels
def summary(live: Live | None, rows: dict[str, pd.DataFrame]) -> None:
    columns = st.columns(4)
    if live is not None:
        scores = live.scores
        rank = int(ranks(live.detector.layers[live.layer].scores)[live.neuron])
        d = cohens_d(
            live.table.value[live.table.kind == "defect"].to_numpy(),
            live.table.value[live.table.kind == "test normal"].to_numpy(),
        )
        k = len(live.detector.layers[live.layer].indices)
        columns[0].metric(
            "Sensitivity (demo)",
            f"{scores[live.neuron]:.4f}",
            border=True,
            help="Variance over the normal support patches, in the detector's normalised space",
        )
        columns[1].metric(
            "Rank (demo)", f"{rank} / {len(scores)}", border=True, help="0 = most sensitive in this layer"
        )
        columns[2].metric(f"In LAKE's top-{k}", "yes" if live.selected else "no", border=True)
        columns[3].metric(
            "Effect size (demo)", ui.fmt(d, 2), border=True, help="Cohen's d, defect vs test-normal patches"
        )
    elif not rows["atlas"].empty:
        first = rows["atlas"].iloc[0]
        columns[0].metric(f"Sensitivity ({first.category})", f"{first.sensitivity:.4f}", border=True)
        columns[1].metric("Rank", f"{int(first['rank'])}", border=True)
        columns[2].metric("Selected", "yes" if first.selected else "no", border=True)
        columns[3].metric("Effect size", ui.fmt(first.effect_size, 2), border=True)


def categories(rows: dict[str, pd.DataFrame], model_name: str | None, site: str, layer: int, neuron: int) -> None:
    st.subheader("Sensitivity and rank in each category")
    atlas = rows["atlas"]
    if atlas.empty:
        st.info(
            "No atlas holds this neuron yet. Open the **Atlas** page to build the demo atlas, or point it at a "
            "folder written by `lake atlas build`.",
            icon=":material/grid_on:",
        )
        return
    label = atlas.assign(
        where=atlas.dataset + "/" + atlas.category, status=np.where(atlas.selected, "selected", "not selected")
    )
    figure = px.bar(
        label,
        x="where",
        y="sensitivity",
        color="status",
        text=label["rank"].map(lambda r: f"rank {r}"),
        color_discrete_map={"selected": "#c2410c", "not selected": "#9ca3af"},
        hover_data=["rank", "effect_size", "k", "seed"],
        labels={"where": "category"},
    )
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    left, right = st.columns([2, 3])
    left.plotly_chart(figure, key="neuron_categories")
    right.dataframe(
        atlas[
            [
                "dataset",
                "category",
                "sensitivity",
                "rank",
                "selected",
                "effect_size",
                "normal_mean",
                "test_normal_mean",
                "defect_mean",
                "n_defect_patches",
            ]
        ],
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in ("sensitivity", "effect_size", "normal_mean", "test_normal_mean", "defect_mean")
        },
    )


def distributions(live: Live | None, rows: dict[str, pd.DataFrame]) -> None:
    st.subheader("Activations on normal and defect patches")
    left, right = st.columns(2)
    if live is not None:
        values = live.table.value
        size = float(values.max() - values.min()) / 60 or 1.0
        bins = {"start": float(values.min()), "end": float(values.max()) + size, "size": size}
        figure = go.Figure(
            [
                go.Histogram(
                    x=live.table.value[live.table.kind == kind],
                    name=kind,
                    xbins=bins,
                    histnorm="probability density",
                    opacity=0.55,
                    marker_color=KIND_COLOURS[kind],
                )
                for kind in ("support (normal)", "test normal", "defect")
            ]
        )
        figure.update_layout(
            height=340,
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
            barmode="overlay",
            title="Live histogram · demo category",
            xaxis_title="normalised activation",
            yaxis_title="density",
        )
        left.plotly_chart(figure, key="neuron_hist")
        left.caption(
            "Defect patch: more than 25 % of its pixels in the mask (as in the atlas); test normal: patches of "
            "normal images and defect-free patches of defective ones."
        )
    atlas = rows["atlas"]
    if atlas.empty:
        right.caption("Atlas statistics appear here once an atlas holds this neuron.")
        return
    figure = go.Figure()
    for kind, mean, std in (
        ("support (normal)", "normal_mean", "normal_std"),
        ("test normal", "test_normal_mean", "test_normal_std"),
        ("defect", "defect_mean", "defect_std"),
    ):
        figure.add_trace(
            go.Scatter(
                x=atlas[mean],
                y=atlas.category,
                mode="markers",
                name=kind,
                error_x={"type": "data", "array": atlas[std].fillna(0)},
                marker={"size": 11, "color": KIND_COLOURS[kind]},
            )
        )
    figure.update_layout(
        height=340,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        title="Atlas: mean ± std per category",
        xaxis_title="normalised activation",
        scattermode="group",
    )
    right.plotly_chart(figure, key="neuron_atlas_stats")


def _live_crop(live: Live, image_index: int, patch: int) -> Image.Image:
    row, col = divmod(int(patch), live.grid[1])
    img = state.image(live.images.test[image_index])
    return ui.patch_crop(
        ui.map_overlay(img, np.zeros((1, 1)), 0.0, 0, 1, None, (row, col, live.grid)), row, col, live.grid
    )


def top_patches(live: Live | None, rows: dict[str, pd.DataFrame]) -> None:
    st.subheader("Top-activating patches")
    if live is not None:
        st.caption(
            "Live, demo category: the patches where this neuron is highest (patch outlined, one patch of context)."
        )
        for kind in ("test normal", "defect"):
            part = live.table[live.table.kind == kind].nlargest(N_TOP, "value")
            if part.empty:
                continue
            st.markdown(f"**{'normal' if kind == 'test normal' else 'defect'} patches**")
            st.image(
                [_live_crop(live, int(r.image_index), int(r.patch)) for r in part.itertuples()],
                caption=[f"{r.value:.2f} · {Path(r.image).name[:18]}" for r in part.itertuples()],
                width=140,
            )
    patches = rows["patches"]
    if patches.empty:
        if not rows["atlas"].empty:
            st.caption(
                "The atlas stores patches for the selected neurons and the 20 with the largest |effect size| per "
                "layer; this neuron is not among them."
            )
        return
    for category, part in patches.groupby("category"):
        with st.expander(f"From the atlas: {category}", expanded=live is None):
            for kind in ("normal", "defect"):
                sub = part[part.kind == kind].sort_values("rank")
                if sub.empty:
                    continue
                st.markdown(f"**{kind}**")
                st.image(
                    [Image.open(io.BytesIO(png)) for png in sub.png],
                    caption=[f"{a:.2f} · {Path(i).name[:18]}" for a, i in zip(sub.activation, sub.image)],
                    width=96,
                )


def ablation_effect(live: Live | None) -> None:
    st.subheader("Effect of zero-ablating this neuron")
    if live is None:
        return
    st.caption(
        f"Live, demo category: LAKE reading {live.site} layer {live.layer} (k = {len(live.support)}, seed 0) scores "
        "the test images with this neuron set to 0 in the forward pass; the normal memory is from the intact model."
    )
    spec = ("listed", 1, "zero", False, 0, (live.neuron,))
    with st.spinner("Running the test images with the neuron ablated ..."):
        ablated, _ = state.ablated(live.model_name, live.cfg_json, live.support, live.images.test, spec)
    labels = [int(label) for label in live.images.labels]
    before, after = category_metrics(live.prediction, labels, live.masks), category_metrics(ablated, labels, live.masks)
    change = ablated.scores - live.prediction.scores
    defect = np.asarray(labels) == 1
    columns = st.columns(4)
    for column, key, label in zip(columns, ("image_auroc", "pixel_aupro"), ("Image AUROC", "Pixel AUPRO")):
        column.metric(f"{label} (ablated)", ui.fmt(after[key]), f"{after[key] - before[key]:+.4f}", border=True)
    columns[2].metric("Mean score change, defective", f"{change[defect].mean():+.3f}", border=True)
    columns[3].metric("Mean score change, normal", f"{change[~defect].mean():+.3f}", border=True)
    frame = pd.DataFrame(
        {
            "image": [live.images.display_name(p) for p in live.images.test],
            "truth": ["defect" if y else "normal" for y in labels],
            "change": change,
        }
    )
    figure = px.strip(
        frame,
        x="change",
        y="truth",
        color="truth",
        hover_name="image",
        color_discrete_map={"defect": "#d62728", "normal": "#1f77b4"},
        labels={"change": "score change"},
    )
    figure.update_layout(height=240, margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False)
    st.plotly_chart(figure, key="neuron_ablation")
