"""Atlas page: sensitivity / effect size of every neuron by layer, and the selected sets by category."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from lake_interp.app import PAGES, state, ui
from lake_interp.app.atlas_figures import category_view, layer_heatmap
from lake_interp.detector import LakeConfig

METRICS = {
    "sensitivity": "Sensitivity (support variance, normalised space)",
    "effect_size": "Effect size (Cohen's d, defect vs normal patches)",
    "abs_effect": "|Effect size|",
    "rank": "Rank by sensitivity (0 = most sensitive)",
}
PROJECT, DEMO, OTHER = "Project atlas (docs/atlas)", "Demo atlas (built for the selected model)", "Another folder"


def choose_atlas(model_name: str) -> Path | None:
    """Sidebar: the atlas folder (building the demo atlas on first use)."""
    st.sidebar.header("Atlas")
    options = ([PROJECT] if state.is_atlas(state.DEFAULT_ATLAS_DIR) else []) + [DEMO, OTHER]
    source = st.sidebar.radio("Source", options, key="atlas_source")
    if source == PROJECT:
        folder = state.DEFAULT_ATLAS_DIR
    elif source == DEMO:
        folder = state.build_demo_atlas(model_name)
    else:
        text = st.sidebar.text_input(
            "Atlas folder", key="atlas_folder_input", help="A folder written by `lake atlas build`"
        )
        if not text.strip():
            st.info("Enter an atlas folder in the sidebar (it holds atlas.parquet and meta.json).")
            return None
        folder = Path(text.strip()).expanduser()
    st.session_state[state.ATLAS_KEY] = str(folder)
    return folder


def url_model(meta: dict, description: str) -> str:
    """The model name used in neuron URLs: the registry name when the atlas records it."""
    return meta.get("model_name") if meta.get("model") == description and meta.get("model_name") else description


def open_selected(event, model: str, site: str, category: str) -> None:
    """Go to the neuron page of a clicked heatmap cell (``y`` is ``L<layer>``, ``x`` the neuron)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if points:
        point = points[0]
        layer = int(str(point["y"]).lstrip("L"))
        st.switch_page(PAGES["neuron"], query_params=ui.neuron_query(model, site, layer, int(point["x"]), category))


def main() -> None:
    ui.page_header(
        "Neuron atlas",
        "Every neuron of every layer: how much it varies over normal patches (what LAKE "
        "selects on) and how strongly it separates defect from normal patches (analysis only).",
    )
    with ui.guard("the atlas"):
        model_name = ui.current_model_name()
        folder = choose_atlas(model_name)
        if folder is None:
            return
        atlas, _, meta = state.read_atlas(folder)
        st.caption(
            f"Atlas `{folder}` · {len(atlas):,} rows · k = {meta.get('k')} support images, seed {meta.get('seed')}"
            f" · {meta.get('image_size')} px"
        )
        descriptions = sorted(atlas.model.unique())
        description = (
            st.sidebar.selectbox("Model", descriptions, key="atlas_model") if len(descriptions) > 1 else descriptions[0]
        )
        rows = atlas[atlas.model == description]
        if any(word in description.lower() for word in ("random",)):
            st.warning(
                f"This atlas was computed on a **randomly initialised** model ({description}).",
                icon=":material/casino:",
            )
        link_model = url_model(meta, description)
        st.sidebar.header("Filters")
        cats = sorted(rows.category.unique())
        category = st.sidebar.selectbox("Category", cats, key="atlas_category")
        site = st.sidebar.radio("Site", sorted(rows.site.unique(), reverse=True), key="atlas_site", horizontal=True)
        site_rows = rows[(rows.site == site)]
        width = int(site_rows.neuron.max()) + 1
        layers = sorted(site_rows.layer.unique())
        chosen_layers = st.sidebar.multiselect("Layers", layers, default=layers, key="atlas_layers")
        max_rank = st.sidebar.slider(
            "Show ranks up to",
            0,
            width - 1,
            width - 1,
            key="atlas_rank",
            help="Hide neurons whose sensitivity rank in their layer is larger",
        )
        st.subheader(f"Layer × neuron · {category} · {site}")
        c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
        metric = c1.selectbox("Colour", list(METRICS), format_func=METRICS.get, key="atlas_metric")
        view = site_rows[(site_rows.category == category) & site_rows.layer.isin(chosen_layers)]
        view = view.assign(abs_effect=view.effect_size.abs())
        if view.empty:
            st.info("No rows for this filter.")
            return
        st.caption("Click a cell to open that neuron's page.")
        log = c2.toggle(
            "Log colour scale",
            value=metric == "sensitivity",
            key="atlas_log",
            disabled=metric not in ("sensitivity", "abs_effect"),
            help="Sensitivity spans orders of magnitude across layers",
        )
        figure = layer_heatmap(view, metric, max_rank, log)
        event = st.plotly_chart(figure, key="atlas_heatmap", on_select="rerun", selection_mode="points")
        open_selected(event, link_model, site, category)
        top_neurons(view, metric, max_rank, link_model, site, category)
        selected_sets(site_rows, link_model, site, layers)


def top_neurons(view: pd.DataFrame, metric: str, max_rank: int, model: str, site: str, category: str) -> None:
    st.subheader("Top neurons")
    ascending = metric == "rank"
    top = view[view["rank"] <= max_rank].sort_values(metric, ascending=ascending).head(50)
    table = top[
        [
            "layer",
            "neuron",
            "rank",
            "selected",
            "sensitivity",
            "effect_size",
            "normal_mean",
            "defect_mean",
            "n_defect_patches",
        ]
    ].assign(page=[ui.neuron_href(model, site, int(r.layer), int(r.neuron), category) for r in top.itertuples()])
    event = st.dataframe(
        table,
        hide_index=True,
        height=300,
        key="atlas_top",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "page": st.column_config.LinkColumn("neuron page", display_text="open"),
            "sensitivity": st.column_config.NumberColumn(format="%.4f"),
            "effect_size": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    picked = event.selection.rows if event is not None else []
    if picked:
        row = table.iloc[picked[0]]
        st.switch_page(
            PAGES["neuron"], query_params=ui.neuron_query(model, site, int(row.layer), int(row.neuron), category)
        )
    st.caption("Select a row (or use its link) to open the neuron page.")


def selected_sets(site_rows: pd.DataFrame, model: str, site: str, layers: list[int]) -> None:
    st.subheader("Selected sets by category")
    default = max(LakeConfig().layers)
    layer = st.select_slider("Layer", layers, value=default if default in layers else layers[-1], key="atlas_set_layer")
    figure, overlap = category_view(site_rows[site_rows.layer == layer])
    st.caption(
        f"Coloured: the neuron is in the detector's top-K at {site} layer {layer} for that category (darker = "
        "more sensitive); grey: not selected. Columns are ordered by how many categories select the neuron."
    )
    st.plotly_chart(figure, key="atlas_sets")
    if len(overlap) > 1:
        st.markdown("**Overlap** (Jaccard index of the selected sets)")
        st.dataframe(
            overlap,
            column_config={
                c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.2f")
                for c in overlap.columns
            },
        )
    else:
        st.caption("One category in this atlas: the overlap needs at least two.")


if __name__ == "__main__":
    main()
