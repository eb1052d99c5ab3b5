"""Detector page: fit LAKE (or a baseline) on k normal images, score test images, explain a patch,
ablate neurons live."""

from __future__ import annotations

import os

import streamlit as st

from lake_interp.app import detector_panels as panels
from lake_interp.app import state, ui
from lake_interp.app.sources import ImageSet, store_uploads, subsample, upload_set
from lake_interp.data import IMAGE_EXTENSIONS, sample_support
from lake_interp.detector import LakeConfig
from lake_interp.errors import LakeError

SOURCES = ("Demo category (BSData ball_screw)", "Category from a data folder", "Upload images")
METHODS = {
    "lake": "LAKE (top-K sensitive neurons)",
    "knn-all": "kNN on all neurons",
    "random-k": "Random K neurons",
    "bottom-k": "Bottom-K (least sensitive)",
}
UPLOAD_TYPES = sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)


def choose_images() -> ImageSet | None:
    """Sidebar: the data source. None (with a message) until there is something to score."""
    st.sidebar.header("Data")
    source = st.sidebar.radio("Images", SOURCES, key="det_source", label_visibility="collapsed")
    if source == SOURCES[0]:
        return state.demo_images()
    if source == SOURCES[1]:
        return _folder_images()
    return _uploaded_images()


def _folder_images() -> ImageSet | None:
    root = st.sidebar.text_input(
        "Data root",
        value=os.environ.get("LAKE_DATA_DIR", ""),
        key="det_root",
        help="A folder holding categories in the MVTec AD layout (or VisA with split_csv).",
    ).strip()
    if not root:
        st.info("Enter a data root in the sidebar (a folder with categories in the MVTec AD layout).")
        return None
    try:
        refs = state.find_category_refs(root)
    except LakeError as error:
        st.sidebar.error(str(error))
        return None
    if not refs:
        st.warning(f"No category found below `{root}` (expected `<category>/train/good` and `<category>/test`).")
        return None
    index = st.sidebar.selectbox(
        "Category", range(len(refs)), format_func=lambda i: f"{refs[i][0]} / {refs[i][1]}", key="det_category"
    )
    images = state.category_images(*refs[index])
    limit = st.sidebar.number_input(
        "Test images (at most)",
        min_value=2,
        max_value=1000,
        value=40,
        step=10,
        key="det_max_test",
        help="Evenly spaced over the normal and defective test images; each costs one forward pass.",
    )
    return subsample(images, int(limit))


def _uploaded_images() -> ImageSet | None:
    folder = state.cache_root() / "uploads"
    normal = st.sidebar.file_uploader(
        "Normal images (support)", type=UPLOAD_TYPES, accept_multiple_files=True, key="det_up_normal"
    )
    test = st.sidebar.file_uploader("Test images", type=UPLOAD_TYPES, accept_multiple_files=True, key="det_up_test")
    stored = [store_uploads([(f.name, f.getvalue()) for f in files or []], folder) for files in (normal, test)]
    for result in stored:
        for message in result.errors:
            st.error(f"Upload refused: {message}", icon=":material/block:")
        for message in result.notes:
            st.caption(f"Note: {message}")
    if not stored[0].paths or not stored[1].paths:
        st.info("Upload at least one normal image (the support) and one test image in the sidebar.")
        return None
    return upload_set(stored[0].paths, stored[1].paths, folder)


def choose_config(model_name: str, model, images: ImageSet) -> tuple[LakeConfig, int, int]:
    """Sidebar: method, k, seed and the neuron selection; returns ``(config, k, seed)``."""
    base = state.base_config(model_name, model)
    st.sidebar.header("Detector")
    method = st.sidebar.selectbox("Method", list(METHODS), format_func=METHODS.get, key="det_method")
    pool = len(images.pool)
    k = st.sidebar.slider(
        "Shots k (normal support images)", 1, max(2, min(pool, 16)), min(4, pool), key="det_k", disabled=pool == 1
    )
    seed = int(st.sidebar.number_input("Seed (support draw)", 0, 10_000, 0, key="det_seed"))
    with st.sidebar.expander("Neuron selection", expanded=False):
        site = st.selectbox("Site", ("resid", "mlp"), index=("resid", "mlp").index(base.site), key="det_site")
        layers = st.multiselect("Layers", list(range(model.cfg.n_layers)), default=list(base.layers), key="det_layers")
        width = model.cfg.site_width(site)
        n = st.number_input(
            "Neurons per layer (K)",
            1,
            width,
            min(base.k_neurons or width, width),
            key="det_K",
            disabled=method == "knn-all",
        )
    if not layers:
        raise LakeError("choose at least one layer under 'Neuron selection'")
    preset = LakeConfig.for_method(method)
    cfg = base.replace(
        selection=preset.selection,
        site=site,
        layers=tuple(sorted(layers)),
        k_neurons=int(n),
        neuron_ratio=None,
        selection_seed=seed if method == "random-k" else base.selection_seed,
        object_name=images.name,
    )
    return cfg, min(k, pool), seed


def main() -> None:
    ui.page_header(
        "Detector",
        "LAKE keeps the few neurons that vary most over k normal images, stores the normal patches in that "
        "sparse space, and marks test patches far from every normal patch.",
    )
    with ui.guard("the detector"):
        model_name = ui.current_model_name()
        images = choose_images()
        model = ui.load_model_or_stop(model_name)
        ui.model_badge(model)
        if images is None:
            return
        cfg, k, seed = choose_config(model_name, model, images)
        support = tuple(str(s.path) for s in sample_support(images.category(), k, seed))
        cfg_json = state.config_json(cfg)
        with st.spinner(f"Running the model on {k} support and {len(images.test)} test images ..."):
            det = state.detector(model_name, cfg_json, support)
            pred = state.prediction(model_name, cfg_json, support, images.test)
            test_feats = state.features(model_name, state.feature_json(cfg), images.test)
        st.caption(f"{images.dataset} / {images.name} · {det.describe()}")
        masks = state.test_masks(images, tuple(test_feats.sizes))
        run = panels.Run(model_name, cfg_json, images, support, det, pred, test_feats, masks)
        panels.metrics(run)
        panels.support_strip(run)
        panels.test_grid(run)
        focus = panels.explain(run)
        panels.ablation(run, focus)


if __name__ == "__main__":
    main()
