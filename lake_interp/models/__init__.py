"""Hooked vision transformers (TransformerLens hook points) and the model registry."""

from lake_interp.models.hooked_vit import SITES, HookedViT, ViTConfig, hook_name
from lake_interp.models.preprocessing import PreprocessConfig, preprocess
from lake_interp.models.registry import DEFAULT_MODEL, list_models, load_model, model_specs

__all__ = [
    "DEFAULT_MODEL",
    "HookedViT",
    "PreprocessConfig",
    "SITES",
    "ViTConfig",
    "hook_name",
    "list_models",
    "load_model",
    "model_specs",
    "preprocess",
]
