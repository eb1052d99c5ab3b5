"""The panels of the Detector page: metrics, support images, test grid, patch explanation, ablation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from lake_interp.app import state, ui
from lake_interp.app.analysis import category_metrics
from lake_interp.app.sources import ImageSet
from lake_interp.detector import Features, LakeDetector, Prediction

METRICS = {
    "image_auroc": "Image AUROC",
    "image_ap": "Image AP",
    "pixel_auroc": "Pixel AUROC",
    "pixel_aupro": "Pixel AUPRO",
}
GRID_COLUMNS = 4


@dataclass
class Run:
    """Everything one Detector page run computed (shared by the panels)."""

    model_name: str
    cfg_json: str
    images: ImageSet
    support: tuple[str, ...]
    detector: LakeDetector
    prediction: Prediction
    features: Features
    masks: list

    def names(self) -> list[str]:
        return [self.images.display_name(p) for p in self.images.test]

    def truth(self, i: int) -> str:
        label = self.images.labels[i]
        return "unlabelled" if label is None else ("normal" if label == 0 else self.images.defects[i])


def _metrics_of(run: Run, prediction: Prediction) -> dict[str, float] | None:
    if not run.images.has_labels:
        return None
    return category_metrics(prediction, [int(label) for label in run.images.labels], run.masks)


def metrics(run: Run) -> None:
    values = _metrics_of(run, run.prediction)
    if values is None:
        st.info("No ground truth for these images: scores and maps only, no metrics.", icon=":material/info:")
        return
    columns = st.columns(len(METRICS) + 1)
    for column, (key, label) in zip(columns, METRICS.items()):
        column.metric(label, ui.fmt(values[key]), border=True)
    labels = np.asarray(run.images.labels)
    columns[-1].metric(
        "Test images",
        f"{len(labels)}",
        f"{int(labels.sum())} defective",
        delta_color="off",
        delta_arrow="off",
        border=True,
    )


def support_strip(run: Run) -> None:
    st.subheader(f"Normal support ({len(run.support)} image{'s' if len(run.support) != 1 else ''})")
    st.image(
        [state.thumbnail(p) for p in run.support], caption=[run.images.display_name(p) for p in run.support], width=200
    )


def test_grid(run: Run) -> None:
    st.subheader("Test images and anomaly maps")
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    alpha = c1.slider("Map opacity", 0.0, 1.0, 0.8, 0.05, key="det_alpha")
    shared = c2.radio("Colour scale", ("shared", "per image"), horizontal=True, key="det_scale") == "shared"
    outline = c3.toggle("Mask outline", value=True, key="det_outline", help="Ground-truth defect region in green")
    order = c4.selectbox("Order", ("by name", "by score"), key="det_order")
    pred, names = run.prediction, run.names()
    index = list(range(len(names)))
    if order == "by score":
        index.sort(key=lambda i: -pred.scores[i])
    lo, hi = min(float(m.min()) for m in pred.maps), max(float(m.max()) for m in pred.maps)
    st.caption(
        f"Colour: inferno over [{lo:.2f}, {hi:.2f}] (shared)" if shared else "Colour: each map over its own range"
    )
    columns = st.columns(GRID_COLUMNS)
    for slot, i in enumerate(index):
        amap = pred.maps[i]
        vmin, vmax = (lo, hi) if shared else (float(amap.min()), float(amap.max()))
        mask = run.masks[i] if outline else None
        picture = ui.map_overlay(state.image(run.images.test[i]), amap, alpha, vmin, vmax, mask)
        columns[slot % GRID_COLUMNS].image(
            picture, caption=f"{pred.scores[i]:.2f} · {run.truth(i)} · {_short(names[i])}", width="stretch"
        )


def _short(name: str, length: int = 20) -> str:
    stem = name.rsplit("/", 1)[-1]
    return stem if len(stem) <= length else stem[: length - 1] + "…"


def explain(run: Run) -> tuple[int, int, int]:
    """Per-neuron contributions of one patch; returns the chosen ``(image, row, col)``."""
    st.subheader("Which neurons make this patch anomalous?")
    st.caption(
        "Each selected neuron's share of the patch's distance to its nearest normal patch "
        "(for cosine distance: (q_j - m_j)² / 2 over the unit-normalised selected neurons)."
    )
    pred, names = run.prediction, run.names()
    left, right = st.columns([2, 3])
    image = left.selectbox(
        "Image",
        range(len(names)),
        index=int(np.argmax(pred.scores)),
        format_func=names.__getitem__,
        key="det_explain_image",
    )
    patch_map = pred.patch_maps[image]
    rows, cols = patch_map.shape
    best = np.unravel_index(int(np.argmax(patch_map)), patch_map.shape)
    a, b = left.columns(2)
    row = int(a.number_input("Patch row", 0, rows - 1, int(best[0]), key=f"det_row_{image}"))
    col = int(b.number_input("Patch column", 0, cols - 1, int(best[1]), key=f"det_col_{image}"))
    layers = list(run.detector.layers)
    layer = left.selectbox("Layer", layers, key="det_explain_layer") if len(layers) > 1 else layers[0]
    img = state.image(run.images.test[image])
    lo, hi = float(pred.maps[image].min()), float(pred.maps[image].max())
    left.image(
        ui.map_overlay(img, pred.maps[image], 0.8, lo, hi, run.masks[image], (row, col, (rows, cols))),
        caption=f"patch ({row}, {col}) · default: the image's highest-scoring patch",
        width="stretch",
    )
    frame = run.detector.explain_patch(run.features, image, row, col, layer)
    total = float(frame["contribution"].sum())
    with right:
        m1, m2, m3 = st.columns(3)
        m1.metric("Patch score", f"{patch_map[row, col]:.2f}", help="Fused map value before smoothing (z-scored)")
        m2.metric("Distance", f"{total:.4f}", help="Sum of the contributions below")
        top = frame.head(15).assign(share=lambda f: f["contribution"] / total if total > 0 else 0.0)
        m3.metric("Top-15 share", f"{top['share'].sum():.0%}")
        figure = px.bar(
            top[::-1],
            x="contribution",
            y=top[::-1]["neuron"].astype(str),
            orientation="h",
            hover_data=["test_value", "nearest_normal_value", "sensitivity"],
            labels={"y": "neuron", "contribution": "contribution to distance"},
            color_discrete_sequence=["#c2410c"],
        )
        figure.update_layout(height=380, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_type="category")
        st.plotly_chart(figure, key="det_explain_chart")
        st.image(ui.patch_crop(img, row, col, (rows, cols)), caption="the patch with one patch of context", width=160)
    links = frame.head(30).assign(
        page=[
            ui.neuron_href(run.model_name, str(r.site), int(r.layer), int(r.neuron), run.images.name)
            for r in frame.head(30).itertuples()
        ]
    )
    st.dataframe(
        links,
        hide_index=True,
        height=260,
        key="det_explain_table",
        column_config={
            "page": st.column_config.LinkColumn("neuron page", display_text="open"),
            "contribution": st.column_config.NumberColumn(format="%.5f"),
        },
    )
    return image, row, col


def ablation(run: Run, focus: tuple[int, int, int]) -> None:
    st.subheader("Ablate neurons in the forward pass")
    st.caption(
        "Hooks at the detector's own site and layers set neurons to zero or to their mean over the support "
        "patches while the test images run; the normal memory comes from the intact model unless 'refit' is on."
    )
    det = run.detector
    width = det.model.cfg.site_width(det.config.site)
    k_selected = min(len(state.indices) for state in det.layers.values())
    c0, c1, c2, c3, c4 = st.columns([1, 2, 2, 2, 1])
    on = c0.toggle("Ablate", key="det_ablate")
    which = c1.radio(
        "Neurons",
        ("selected", "random"),
        horizontal=True,
        key="det_ablate_which",
        help="selected: the detector's top neurons by sensitivity; random: as many other neurons (control)",
    )
    n = c2.slider(
        "How many per layer",
        1,
        k_selected if which == "selected" else width,
        min(k_selected, width),
        key="det_ablate_n",
    )
    mode = c3.radio("Mode", ("mean", "zero"), horizontal=True, key="det_ablate_mode")
    refit = c4.checkbox("Refit", key="det_ablate_refit", help="Ablate in the support pass too and rebuild the memory")
    if not on:
        st.caption("Switch on to compare maps and scores with and without these neurons.")
        return
    spec = (which, int(n), mode, bool(refit), 0)
    with st.spinner("Running the test images with the neurons ablated ..."):
        ablated, sets = state.ablated(run.model_name, run.cfg_json, run.support, run.images.test, spec)
    st.caption("Ablated: " + "; ".join(f"{s.site} L{s.layer}: {len(s.indices)} neurons" for s in sets))
    image = focus[0]
    before, after = run.prediction.maps[image], ablated.maps[image]
    lo, hi = min(before.min(), after.min()), max(before.max(), after.max())
    img = state.image(run.images.test[image])
    left, right = st.columns(2)
    left.image(
        ui.map_overlay(img, before, 0.8, lo, hi, run.masks[image]),
        width="stretch",
        caption=f"intact · score {run.prediction.scores[image]:.2f}",
    )
    right.image(
        ui.map_overlay(img, after, 0.8, lo, hi, run.masks[image]),
        width="stretch",
        caption=f"ablated · score {ablated.scores[image]:.2f} "
        f"(Δ {ablated.scores[image] - run.prediction.scores[image]:+.2f})",
    )
    base, changed = _metrics_of(run, run.prediction), _metrics_of(run, ablated)
    if base is not None and changed is not None:
        columns = st.columns(len(METRICS))
        for column, (key, label) in zip(columns, METRICS.items()):
            delta = changed[key] - base[key]
            column.metric(
                f"{label} (ablated)", ui.fmt(changed[key]), None if not np.isfinite(delta) else f"{delta:+.3f}"
            )
    scores = pd.DataFrame(
        {
            "image": run.names(),
            "truth": [run.truth(i) for i in range(len(run.images.test))],
            "intact": run.prediction.scores,
            "ablated": ablated.scores,
        }
    ).assign(change=lambda f: f["ablated"] - f["intact"])
    figure = px.scatter(
        scores,
        x="intact",
        y="ablated",
        color="truth",
        hover_name="image",
        labels={"intact": "score, intact", "ablated": "score, ablated"},
    )
    top = float(max(scores["intact"].max(), scores["ablated"].max()))
    low = float(min(scores["intact"].min(), scores["ablated"].min()))
    figure.add_shape(type="line", x0=low, y0=low, x1=top, y1=top, line={"dash": "dot", "color": "grey"})
    figure.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title="Image scores")
    left, right = st.columns([3, 2])
    left.plotly_chart(figure, key="det_ablate_chart")
    right.dataframe(
        scores.sort_values("change"),
        hide_index=True,
        height=360,
        column_config={c: st.column_config.NumberColumn(format="%.2f") for c in ("intact", "ablated", "change")},
    )
