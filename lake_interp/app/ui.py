"""Widgets and rendering helpers shared by the pages: headers, error guard, model badge, overlays,
neuron links.

Example:
    >>> neuron_href("dinov2-s14", "resid", 7, 324)
    'neuron?model=dinov2-s14&site=resid&layer=7&neuron=324'
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from lake_interp.app import PAGES, state
from lake_interp.errors import LakeError
from lake_interp.models.hooked_vit import HookedViT
from lake_interp.visualize import colorize, draw_outline

LOG = logging.getLogger("lake_interp.app")
MODEL_KEY = "model_name"


# ---------------------------------------------------------------------------------------------- layout
def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


@contextmanager
def guard(what: str = "this view") -> Iterator[None]:
    """Show errors as messages, never as tracebacks: a :class:`LakeError` (bad input) shows its own
    message; anything else is logged with its traceback and summarised in one line."""
    try:
        yield
    except LakeError as error:
        st.error(str(error), icon=":material/error:")
    except Exception as error:  # noqa: BLE001 - the app must keep running
        LOG.error("error in %s:\n%s", what, traceback.format_exc())
        st.error(f"Could not compute {what}: {type(error).__name__}: {error}", icon=":material/error:")


# ---------------------------------------------------------------------------------------------- model
def current_model_name() -> str:
    return st.session_state.get(MODEL_KEY) or state.default_model_name()


def model_label(name: str) -> str:
    weights = state.model_weights(name)
    tag = {"offline": "offline", "hub": "hub weights", "random": "RANDOM, testing only", "custom": "custom"}[weights]
    return f"{name} ({tag})"


def load_model_or_stop(name: str) -> HookedViT:
    """The cached model, or an error message (e.g. hub weights offline) and the end of this page run."""
    try:
        return state.get_model(name)
    except LakeError as error:
        st.error(str(error), icon=":material/cloud_off:")
        st.info("Pick another model in the sidebar; `dinov2-s14` works offline.")
        st.stop()
    raise AssertionError("unreachable")


def model_badge(model: HookedViT) -> None:
    """A plain statement of what the model is (random weights, image-only)."""
    cfg = model.cfg
    if cfg.is_random:
        st.warning(
            f"**Randomly initialised model** ({cfg.description}): for testing the mechanics only; "
            "its maps and neurons mean nothing.",
            icon=":material/casino:",
        )
    text = (
        "CLIP with a text tower: LAKE's cross-modal branch is on"
        if cfg.has_text
        else ("image-only backbone: LAKE's cross-modal (text) branch is off")
    )
    st.caption(f"Model: **{cfg.description}** · {cfg.n_layers} blocks · width {cfg.d_model} · MLP {cfg.d_mlp} · {text}")


# ---------------------------------------------------------------------------------------------- links
def neuron_query(model: str, site: str, layer: int, neuron: int, category: str | None = None) -> dict[str, str]:
    query = {"model": model, "site": site, "layer": str(int(layer)), "neuron": str(int(neuron))}
    if category:
        query["category"] = category
    return query


def neuron_href(model: str, site: str, layer: int, neuron: int, category: str | None = None) -> str:
    """Relative URL of a neuron page (works as a link from any page of the app)."""
    return "neuron?" + urlencode(neuron_query(model, site, layer, neuron, category))


def neuron_link(
    model: str, site: str, layer: int, neuron: int, category: str | None = None, label: str | None = None
) -> None:
    st.page_link(
        PAGES["neuron"],
        label=label or f"Open neuron {site} L{layer} #{neuron}",
        icon=":material/neurology:",
        query_params=neuron_query(model, site, layer, neuron, category),
    )


# ---------------------------------------------------------------------------------------------- images
def blend(img: Image.Image, amap: np.ndarray, opacity: float, vmin: float, vmax: float) -> Image.Image:
    """Inferno-coloured ``amap`` over ``img`` with a per-pixel weight ``opacity * scaled value``: low (normal)
    regions keep the photo, high ones turn yellow."""
    colours = Image.fromarray(colorize(amap, vmin, vmax))
    weight = np.clip((np.asarray(amap, dtype=np.float32) - vmin) / (vmax - vmin if vmax > vmin else 1.0), 0, 1)
    weights = Image.fromarray((weight * 255 * opacity).astype(np.uint8), mode="L")
    if colours.size != img.size:
        colours = colours.resize(img.size, Image.Resampling.BILINEAR)
        weights = weights.resize(img.size, Image.Resampling.BILINEAR)
    return Image.composite(colours, img.convert("RGB"), weights)


def map_overlay(
    img: Image.Image,
    amap: np.ndarray,
    alpha: float,
    vmin: float,
    vmax: float,
    mask: np.ndarray | None = None,
    box: tuple[int, int, tuple[int, int]] | None = None,
) -> Image.Image:
    """Anomaly map over the image (see :func:`blend`), with the mask outline in green and an optional
    patch ``box = (row, col, (rows, cols))`` in cyan."""
    out = blend(img, amap, alpha, vmin, vmax) if alpha > 0 else img.copy()
    if mask is not None and mask.any():
        out = draw_outline(out, mask)
    if box is not None:
        row, col, (rows, cols) = box
        draw = ImageDraw.Draw(out)
        w, h = out.size
        x0, y0, x1, y1 = col * w / cols, row * h / rows, (col + 1) * w / cols, (row + 1) * h / rows
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 230, 255), width=max(2, w // 200))
    return out


def patch_crop(img: Image.Image, row: int, col: int, grid: tuple[int, int], context: int = 1) -> Image.Image:
    """The patch at ``(row, col)`` with ``context`` patches around it, enlarged for display."""
    rows, cols = grid
    w, h = img.size
    r0, r1 = max(0, row - context), min(rows, row + context + 1)
    c0, c1 = max(0, col - context), min(cols, col + context + 1)
    crop = img.crop((round(c0 * w / cols), round(r0 * h / rows), round(c1 * w / cols), round(r1 * h / rows)))
    scale = 160 / max(crop.size)
    return crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.Resampling.NEAREST
    )


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"
