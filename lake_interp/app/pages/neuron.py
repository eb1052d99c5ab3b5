"""Neuron page (linkable: ``?model=...&site=...&layer=...&neuron=...``): the neuron in every category of
the atlas, its activations on normal vs defect patches, its top patches and its causal effect."""

from __future__ import annotations

import streamlit as st

from lake_interp.app import neuron_panels as panels
from lake_interp.app import state, ui
from lake_interp.errors import ConfigError
from lake_interp.models.hooked_vit import hook_name
from lake_interp.models.registry import list_models

QUERY_SEEN = "neuron_query_seen"


def _query_int(name: str, default: int) -> int:
    value = st.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"URL parameter {name}={value!r} is not an integer") from None


def resolve_model(text: str) -> tuple[str | None, str]:
    """``(registry name or None, label)`` of the URL's model (a registry name, or an atlas description)."""
    if text in list_models() or text.startswith(("timm:", "open_clip:")):
        return text, text
    for folder in panels.atlas_folders(None):
        meta = state.read_atlas(folder)[2]
        if meta.get("model") == text and meta.get("model_name"):
            return meta["model_name"], text
    return None, text


def choose_neuron(model, default_site: str, default_layer: int) -> tuple[str, int, int]:
    """Sidebar inputs, initialised from the URL and written back to it (so the URL stays shareable)."""
    query = (st.query_params.get("site", default_site), _query_int("layer", default_layer), _query_int("neuron", 0))
    if st.session_state.get(QUERY_SEEN) != query:  # arrived by a link: the URL wins over old widget values
        st.session_state["neuron_site"], st.session_state["neuron_layer"], st.session_state["neuron_index"] = query
    st.sidebar.header("Neuron")
    if query[0] not in ("resid", "mlp"):
        raise ConfigError(f"URL parameter site={query[0]!r} must be 'resid' or 'mlp'")
    site = st.sidebar.radio("Site", ("resid", "mlp"), key="neuron_site", horizontal=True)
    n_layers = model.cfg.n_layers if model is not None else 64
    layer = int(st.sidebar.number_input("Layer", 0, n_layers - 1, key="neuron_layer"))
    width = model.cfg.site_width(site) if model is not None else 1 << 16
    neuron = int(st.sidebar.number_input("Neuron", 0, width - 1, key="neuron_index"))
    chosen = (site, layer, neuron)
    st.session_state[QUERY_SEEN] = chosen
    st.query_params.update({"site": site, "layer": str(layer), "neuron": str(neuron)})
    return chosen


def main() -> None:
    with ui.guard("the neuron page"):
        text = st.query_params.get("model") or ui.current_model_name()
        model_name, label = resolve_model(text)
        st.query_params["model"] = model_name or label
        model = ui.load_model_or_stop(model_name) if model_name else None
        base = state.base_config(model_name, model) if model is not None else None
        site, layer, neuron = choose_neuron(model, base.site if base else "resid", max(base.layers) if base else 0)
        if model is not None and layer >= model.cfg.n_layers:
            raise ConfigError(f"layer {layer} out of range: {model.cfg.description} has {model.cfg.n_layers} blocks")
        st.title(f"Neuron #{neuron} · {site} · layer {layer}")
        description = model.cfg.description if model is not None else label
        st.caption(f"{description} · hook `{hook_name(site, layer)}` · share this page by its URL")
        if model is not None and model.cfg.is_random:
            ui.model_badge(model)
        rows = panels.atlas_rows(model_name, description, site, layer, neuron)
        live = panels.live(model_name, model, site, layer, neuron) if model is not None else None
        if live is None:
            st.info(f"`{label}` is not a model this app can load, so the live panels (demo category) are off.")
        panels.summary(live, rows)
        panels.categories(rows, model_name, site, layer, neuron)
        panels.distributions(live, rows)
        panels.top_patches(live, rows)
        panels.ablation_effect(live)


if __name__ == "__main__":
    main()
