"""Studies page: the causal studies' results (``analyses/<study>/results.csv``) as interactive figures, and
a small selection-control study run live on the demo category."""

from __future__ import annotations

import importlib
from pathlib import Path

import streamlit as st

from lake_interp.app import state, ui
from lake_interp.app.analysis import selection_study
from lake_interp.data import sample_support

STUDIES = {
    "selection_controls": "Selection controls",
    "ablation": "Ablation",
    "patching": "Activation patching",
    "overlap": "Overlap",
    "robustness": "Robustness",
}
LIVE_KEY = "studies_live_result"
K_CHOICES = (5, 10, 25, 50, 100, 200)


def study_tab(study: str, folder: Path) -> None:
    results = folder / study / "results.csv"
    readme = folder / study / "README.md"
    if not results.is_file():
        st.info(
            f"No results yet: `{results}` is missing. Run `python analyses/{study}/run.py` to produce them.",
            icon=":material/hourglass_empty:",
        )
        return
    df = state.csv_table(str(results), state.mtime(results))
    if readme.is_file():
        with st.expander("About this study (README)"):
            st.markdown(readme.read_text())
    with ui.guard(f"the {STUDIES[study]} figures"):
        figures = importlib.import_module(f"lake_interp.studies.{study}").figures(df)
        for name, figure in figures.items():
            st.plotly_chart(figure, key=f"study_{study}_{name}")
    with st.expander(f"Data ({len(df):,} rows)"):
        st.dataframe(df, hide_index=True, height=300)
        st.download_button(
            "Download results.csv",
            results.read_bytes(),
            file_name=f"{study}_results.csv",
            mime="text/csv",
            key=f"study_{study}_download",
        )


def live_tab() -> None:
    st.markdown(
        "**Selection controls, live on the demo category.** For each neuron budget K the detector is fitted "
        "on the same support features with LAKE's top-K, the K least sensitive (bottom-K) and K random neurons, "
        "and compared with all neurons."
    )
    model_name = ui.current_model_name()
    model = ui.load_model_or_stop(model_name)
    base = state.base_config(model_name, model)
    images = state.demo_images()
    c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 2])
    width = model.cfg.site_width(base.site)
    options = [k for k in K_CHOICES if k < width]
    k_values = c1.multiselect(
        "K values", options, default=[k for k in (10, 50, 100) if k in options] or options[:2], key="studies_k"
    )
    layer = c2.selectbox("Layer", list(range(model.cfg.n_layers)), index=max(base.layers), key="studies_layer")
    shots = c3.selectbox("Shots k", [k for k in (1, 2, 4, 8) if k <= len(images.pool)], index=2, key="studies_shots")
    seeds = c4.number_input("Random draws", 1, 5, 2, key="studies_seeds", help="Random-K neuron draws per K")
    run = c5.button("Run on the demo category", type="primary", key="studies_run", disabled=not k_values)
    if run:
        cfg = base.replace(layers=(int(layer),))
        support = tuple(str(s.path) for s in sample_support(images.category(), int(shots), 0))
        feature_cfg = state.feature_json(cfg)
        progress = st.progress(0.0, text="Extracting features of the demo images ...")
        support_feats = state.features(model_name, feature_cfg, support)
        test_feats = state.features(model_name, feature_cfg, images.test)
        masks = state.test_masks(images, tuple(test_feats.sizes))
        step = lambda done, total, label: progress.progress(done / total, text=f"{done}/{total} · {label}")
        df = selection_study(
            cfg,
            model,
            k_values,
            range(int(seeds)),
            support_feats,
            test_feats,
            [int(y) for y in images.labels],
            masks,
            {"model": model.cfg.description, "dataset": images.dataset, "category": images.name},
            int(shots),
            0,
            on_step=step,
        )
        st.session_state[LIVE_KEY] = df
    df = st.session_state.get(LIVE_KEY)
    if df is None:
        st.caption("Choose K values and press Run (about a second per configuration on the default model).")
        return
    from lake_interp.studies.selection_controls import figures

    figs = figures(df)
    sweeps = {name: fig for name, fig in figs.items() if name.startswith("k_sweep")} or figs
    for name, figure in sweeps.items():  # the K sweeps (the per-layer bars need several layers)
        st.plotly_chart(figure, key=f"studies_live_{name}")
    st.dataframe(df, hide_index=True, height=260, key="studies_live_table")


def main() -> None:
    ui.page_header(
        "Studies",
        "Causal tests of LAKE's claims: does selecting sensitive neurons matter, do they carry "
        "the anomaly signal (ablation, patching), do categories share them, and how robust is the selection.",
    )
    folder = Path(st.sidebar.text_input("Analyses folder", str(state.ANALYSES_DIR), key="studies_folder")).expanduser()
    tabs = st.tabs([*STUDIES.values(), "Run live"])
    for tab, study in zip(tabs, STUDIES):
        with tab:
            study_tab(study, folder)
    with tabs[-1], ui.guard("the live study"):
        live_tab()


if __name__ == "__main__":
    main()
