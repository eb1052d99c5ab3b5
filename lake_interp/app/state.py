"""Cached loaders shared by every page and every session of the app.

``st.cache_resource`` holds objects that are shared, never copied: the model (one per name, guarded by
``model.lock`` whenever hooks are used), features, fitted detectors and predictions. ``st.cache_data``
holds tables read from disk (keyed on the file's modification time, so a rebuilt atlas is re-read).
Configurations cross the cache boundary as JSON text, so they hash cheaply and exactly.

Example:
    >>> from lake_interp.app.state import safe_name
    >>> safe_name("timm:vit_small/x")
    'timm_vit_small_x'
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

from lake_interp.app import APP_DIR
from lake_interp.app.analysis import AblationSpec, ablation_hooks, ablation_sets, extract_ablated
from lake_interp.app.sources import ImageSet, from_category
from lake_interp.detector import Features, LakeConfig, LakeDetector, Prediction
from lake_interp.models.hooked_vit import HookedViT

MODEL_ENV = "LAKE_APP_MODEL"
REPO_ROOT = APP_DIR.parents[1]
DEFAULT_ATLAS_DIR = REPO_ROOT / "docs" / "atlas"
ANALYSES_DIR = REPO_ROOT / "analyses"
FEATURE_FIELDS = ("model", "site", "layers", "image_size", "text_branch", "text_layer", "visual_branch", "batch_size")


# ---------------------------------------------------------------------------------------------- paths
def default_model_name() -> str:
    """Model selected at start: ``$LAKE_APP_MODEL``, else the offline default."""
    from lake_interp.models.registry import DEFAULT_MODEL

    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def cache_root() -> Path:
    """The app's cache folder: ``$LAKE_CACHE_DIR/app``, else ``$XDG_CACHE_HOME/lake_interp/app``, else
    ``~/.cache/lake_interp/app``."""
    if os.environ.get("LAKE_CACHE_DIR"):
        root = Path(os.environ["LAKE_CACHE_DIR"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lake_interp"
    else:
        root = Path.home() / ".cache" / "lake_interp"
    return root / "app"


def safe_name(text: str) -> str:
    """A file-system-safe version of a model name (``timm:x/y`` -> ``timm_x_y``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def mtime(path: str | Path) -> float:
    """Modification time of ``path`` (0 when missing): part of table cache keys."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------------------------- model
@st.cache_resource(max_entries=3, show_spinner="Loading the model (once, shared by all sessions) ...")
def _load_model(name: str) -> tuple[HookedViT | None, str | None]:
    """``(model, None)`` or ``(None, error message)``; failures are cached too, so an unavailable hub
    model is not retried on every rerun."""
    from lake_interp.errors import LakeError
    from lake_interp.models.registry import load_model

    try:
        return load_model(name), None
    except LakeError as error:
        return None, str(error)


def get_model(name: str) -> HookedViT:
    """The hooked model registered as ``name`` (raises :class:`~lake_interp.errors.ModelLoadError`)."""
    from lake_interp.errors import ModelLoadError

    model, error = _load_model(name)
    if model is None:
        raise ModelLoadError(error)
    return model


def model_weights(name: str) -> str:
    """``offline``, ``hub``, ``random`` or ``custom`` (``timm:`` / ``open_clip:`` names)."""
    from lake_interp.models.registry import model_specs

    return next((spec.weights for spec in model_specs() if spec.name == name), "custom")


def model_summary(name: str) -> str:
    from lake_interp.models.registry import model_specs

    return next((spec.summary for spec in model_specs() if spec.name == name), name)


def base_config(model_name: str, model: HookedViT) -> LakeConfig:
    """``LakeConfig()`` defaults adapted to ``model``: layers past its depth fall back to its last block,
    K is capped at the site width, and random test models run at their small native size."""
    default = LakeConfig()
    n_layers = model.cfg.n_layers
    layers = tuple(layer for layer in default.layers if layer < n_layers) or (n_layers - 1,)
    image_size = model.cfg.image_size if model.cfg.is_random else default.image_size
    width = model.cfg.site_width(default.site)
    k = None if default.k_neurons is None else min(default.k_neurons, width)
    return default.replace(model=model_name, layers=layers, image_size=image_size, k_neurons=k)


def config_json(cfg: LakeConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)


def feature_json(cfg: LakeConfig) -> str:
    """The part of a configuration that determines the extracted features."""
    data = cfg.to_dict()
    return json.dumps({key: data[key] for key in FEATURE_FIELDS}, sort_keys=True)


# ---------------------------------------------------------------------------------------------- data
@st.cache_resource(show_spinner=False)
def demo_images() -> ImageSet:
    """The shipped demo category (BSData ball_screw subset)."""
    from lake_interp.data import load_demo_category

    return from_category(load_demo_category())


@st.cache_data(ttl=120, show_spinner="Looking for categories ...")
def find_category_refs(root: str) -> list[tuple[str, str, str, str]]:
    """``(dataset, name, path, layout)`` of the categories below ``root``."""
    from lake_interp.data import find_categories

    return [(r.dataset, r.name, str(r.path), r.layout) for r in find_categories(root)]


@st.cache_resource(max_entries=8, show_spinner="Reading the category ...")
def category_images(dataset: str, name: str, path: str, layout: str) -> ImageSet:
    import warnings

    from lake_interp.data import CategoryRef, load_category

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing masks are shown in the UI instead
        return from_category(load_category(CategoryRef(dataset, name, Path(path), layout)))


@st.cache_resource(max_entries=512, show_spinner=False)
def image(path: str) -> Image.Image:
    """An image as RGB (shared; never modify it)."""
    from lake_interp.images import load_image

    return load_image(path)


@st.cache_resource(max_entries=512, show_spinner=False)
def thumbnail(path: str, width: int = 240) -> Image.Image:
    img = image(path)
    height = max(1, round(img.height * width / img.width))
    return img.resize((width, height), Image.Resampling.LANCZOS)


@st.cache_resource(max_entries=16, show_spinner=False)
def test_masks(images: ImageSet, sizes: tuple[tuple[int, int], ...]) -> list:
    return images.test_masks(list(sizes))


# ---------------------------------------------------------------------------------------------- detector
@st.cache_resource(max_entries=12, show_spinner=False)
def features(model_name: str, feature_cfg: str, paths: tuple[str, ...]) -> Features:
    """Features of ``paths`` for a configuration (see :func:`feature_json`); one forward pass each."""
    cfg = LakeConfig.from_dict(json.loads(feature_cfg))
    return LakeDetector(cfg, get_model(model_name)).extract(list(paths))


@st.cache_resource(max_entries=24, show_spinner=False)
def detector(model_name: str, cfg: str, support: tuple[str, ...]) -> LakeDetector:
    """A detector fitted on ``support`` (shared: only read from it); CLIP prompts use ``cfg.object_name``."""
    config = LakeConfig.from_dict(json.loads(cfg))
    det = LakeDetector(config, get_model(model_name))
    return det.fit_features(features(model_name, feature_json(config), support))


@st.cache_resource(max_entries=24, show_spinner=False)
def prediction(model_name: str, cfg: str, support: tuple[str, ...], test: tuple[str, ...]) -> Prediction:
    det = detector(model_name, cfg, support)
    return det.predict_features(features(model_name, feature_json(det.config), test))


@st.cache_resource(max_entries=8, show_spinner=False)
def ablated(
    model_name: str, cfg: str, support: tuple[str, ...], test: tuple[str, ...], spec: tuple
) -> tuple[Prediction, list]:
    """Prediction with neurons ablated in the forward pass (``spec``: :class:`AblationSpec` fields).

    Returns ``(prediction, neuron sets)``. With ``refit`` the support pass is ablated too and the
    memory rebuilt; otherwise the memory of the intact model is kept.
    """
    ablation = AblationSpec(*spec)
    det = detector(model_name, cfg, support)
    support_feats = features(model_name, feature_json(det.config), support)
    sets = ablation_sets(det, ablation)
    hooks = ablation_hooks(sets, ablation.mode, support_feats)
    if ablation.refit:
        det = LakeDetector(det.config, det.model).fit_features(extract_ablated(det, support, hooks))
    test_feats = extract_ablated(det, test, hooks)
    return det.predict_features(test_feats), sets


# ---------------------------------------------------------------------------------------------- tables
@st.cache_resource(max_entries=6, show_spinner="Reading the atlas ...")
def atlas_tables(folder: str, stamp: float) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """``(atlas, patches or None, meta)`` of an atlas folder via :func:`lake_interp.atlas.load_atlas`
    (``stamp``: modification time, part of the key). Shared, not copied: never modify the tables."""
    from lake_interp.atlas import load_atlas

    return load_atlas(folder)


@st.cache_data(max_entries=16, show_spinner=False)
def csv_table(path: str, stamp: float) -> pd.DataFrame:
    return pd.read_csv(path)


# ---------------------------------------------------------------------------------------------- atlas
ATLAS_KEY = "atlas_folder"  # session key (not a widget): the atlas chosen on the Atlas page, reused by the Neuron page
_BUILD_LOCK = threading.Lock()


def demo_atlas_dir(model_name: str) -> Path:
    """Where the app keeps the demo atlas of ``model_name``."""
    return cache_root() / "atlas" / safe_name(model_name)


def is_atlas(folder: str | Path) -> bool:
    return (Path(folder) / "atlas.parquet").is_file() and (Path(folder) / "meta.json").is_file()


def read_atlas(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """``(atlas, patches or None, meta)`` (cached until the folder's ``meta.json`` changes)."""
    return atlas_tables(str(folder), mtime(Path(folder) / "meta.json"))


def build_demo_atlas(model_name: str) -> Path:
    """Build the demo atlas of ``model_name`` (once; sessions wait for a build in progress) with a
    visible status box. Returns its folder."""
    folder = demo_atlas_dir(model_name)
    if is_atlas(folder):
        return folder
    with st.status(f"Building the demo atlas for {model_name} (first use only) ...", expanded=True) as status:
        start = time.perf_counter()
        with _BUILD_LOCK:
            if not is_atlas(folder):
                from lake_interp.atlas import build_atlas

                st.write("Loading the model ...")
                model = get_model(model_name)
                config = base_config(model_name, model)
                st.write(
                    f"Running 4 support images and the demo test images through all {model.cfg.n_layers} blocks; "
                    "collecting statistics of every resid and mlp neuron ..."
                )
                build_atlas(
                    None,
                    None,
                    model_name=model_name,
                    shots=4,
                    seed=0,
                    output=folder,
                    progress=False,
                    model=model,
                    config=config,
                    patch_layers=config.layers,
                )
        status.update(
            label=f"Demo atlas ready ({time.perf_counter() - start:.0f} s), cached in {folder}",
            state="complete",
            expanded=False,
        )
    return folder
