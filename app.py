"""LAKE explorer: ``streamlit run app.py --server.fileWatcherType none``.

Starts on the embedded default (offline DINOv2-S/14 + the shipped BSData demo category) with no set-up.
``LAKE_APP_MODEL`` picks another start model (tests use ``random-dinov2-small``).
"""

from __future__ import annotations

import streamlit as st

from lake_interp.app import PAGES, state, ui
from lake_interp.models.registry import list_models

st.set_page_config(page_title="LAKE explorer", page_icon=":material/troubleshoot:", layout="wide")

navigation = st.navigation(
    {
        "Explore": [
            st.Page(PAGES["detector"], title="Detector", icon=":material/image_search:", default=True),
            st.Page(PAGES["atlas"], title="Atlas", icon=":material/grid_on:"),
            st.Page(PAGES["neuron"], title="Neuron", icon=":material/neurology:"),
        ],
        "Results": [st.Page(PAGES["studies"], title="Studies", icon=":material/monitoring:")],
        "Info": [st.Page(PAGES["about"], title="About", icon=":material/info:")],
    }
)

with st.sidebar:
    models = list_models()
    start = state.default_model_name()
    if start not in models:
        models.append(start)
    st.selectbox(
        "Model",
        models,
        index=models.index(start),
        key=ui.MODEL_KEY,
        format_func=ui.model_label,
        help="Backbone used by the detector and the live panels. Hub models need their weights in the local "
        "Hugging Face cache; random models are for testing the mechanics only.",
    )

navigation.run()
