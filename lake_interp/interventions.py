"""Neuron interventions on a :class:`~lake_interp.models.HookedViT`: ablation and activation patching.

A *neuron* is one unit at a *site* of one layer: ``resid`` (a residual-stream channel of
``blocks.{l}.hook_resid_post``, width d_model) or ``mlp`` (a hidden unit of ``blocks.{l}.mlp.hook_post``,
width d_mlp). Interventions are forward hooks returned as ``(hook_name, fn)`` pairs, so they compose
with ``run_with_hooks``, ``run_with_cache`` and the ``hooks()`` context.

Ablation modes:
    * ``zero``: set the neurons to 0.
    * ``mean``: set them to their mean over a reference set of images (all tokens, or per token
      position with ``per_position=True``), see :func:`reference_mean`.
    * ``resample``: set them to their values on other reference images, drawn with a seeded generator.

Example:
    >>> import torch
    >>> from lake_interp import load_model
    >>> model = load_model("random-vit-tiny")
    >>> neurons = NeuronSet("mlp", layer=0, indices=(3, 7))
    >>> with model.hooks(fwd_hooks=[ablation_hook(neurons, "zero")]):
    ...     _, cache = model.run_with_cache(torch.randn(1, 3, 32, 32), names_filter=neurons.hook_name)
    >>> float(cache[neurons.hook_name][..., [3, 7]].abs().max())
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import pandas as pd
import torch
from torch import Tensor

from lake_interp.errors import ConfigError
from lake_interp.models.hooked_vit import SITES, HookedViT, hook_name

HookFn = Callable[..., Tensor | None]
ABLATION_MODES = ("zero", "mean", "resample")


@dataclass(frozen=True)
class NeuronSet:
    """A set of neurons at one site and layer.

    Example:
        >>> NeuronSet("resid", 5, (1, 2)).hook_name
        'blocks.5.hook_resid_post'
    """

    site: str
    layer: int
    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ConfigError(f"unknown site {self.site!r}; choose one of {SITES}")
        object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))
        if len(set(self.indices)) != len(self.indices):
            raise ConfigError("neuron indices must be distinct")

    @property
    def hook_name(self) -> str:
        return hook_name(self.site, self.layer)

    def index_tensor(self, device: torch.device | str = "cpu") -> Tensor:
        return torch.tensor(self.indices, dtype=torch.long, device=device)

    def validate(self, model: HookedViT) -> NeuronSet:
        """Check layer and indices against ``model``; returns self."""
        if not 0 <= self.layer < model.cfg.n_layers:
            raise ConfigError(f"layer {self.layer} out of range for {model.cfg.n_layers} blocks")
        width = model.cfg.site_width(self.site)
        bad = [i for i in self.indices if not 0 <= i < width]
        if bad:
            raise ConfigError(f"neuron indices {bad[:5]} out of range for site {self.site!r} of width {width}")
        return self


@torch.no_grad()
def collect_site(model: HookedViT, pixels: Tensor, site: str, layer: int, batch_size: int = 16) -> Tensor:
    """Activations of every neuron at ``site``/``layer``: ``-> [images, tokens, width]``.

    Stops the forward pass after block ``layer``.
    """
    name = hook_name(site, layer)
    chunks = []
    for start in range(0, len(pixels), batch_size):
        _, cache = model.run_with_cache(pixels[start : start + batch_size], names_filter=name, stop_at_layer=layer + 1)
        chunks.append(cache[name])
    return torch.cat(chunks)


def reference_mean(activations: Tensor, per_position: bool = False) -> Tensor:
    """Mean reference values from ``[images, tokens, width]`` activations:
    ``[width]`` (over images and tokens) or ``[tokens, width]`` (per position)."""
    return activations.mean(dim=0) if per_position else activations.mean(dim=(0, 1))


def _set_neurons(activation: Tensor, hook: object, index: Tensor, values: Tensor | float) -> Tensor:
    """Hook body: ``activation[..., index] = values`` (broadcast over batch and tokens)."""
    activation = activation.clone()
    # values: a scalar, [n], [tokens, n] or [batch, tokens, n]; all broadcast to [batch, tokens, n]
    activation[..., index] = values.to(activation.dtype) if isinstance(values, Tensor) else values
    return activation


def ablation_hook(
    neurons: NeuronSet,
    mode: str = "zero",
    reference: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[str, HookFn]:
    """A ``(hook_name, fn)`` pair that ablates ``neurons``.

    Args:
        mode: ``zero``, ``mean`` or ``resample``.
        reference: for ``mean``, mean values ``[width]`` or ``[tokens, width]`` (see :func:`reference_mean`);
            for ``resample``, reference activations ``[images, tokens, width]``.
        generator: seeded generator for ``resample`` (one reference image drawn per input image).
    """
    if mode not in ABLATION_MODES:
        raise ConfigError(f"unknown ablation mode {mode!r}; choose one of {ABLATION_MODES}")
    index = neurons.index_tensor()
    if len(index) == 0:
        return neurons.hook_name, lambda activation, hook: None
    if mode == "zero":
        return neurons.hook_name, partial(_set_neurons, index=index, values=0.0)
    if reference is None:
        raise ConfigError(f"{mode} ablation needs reference activations")
    if mode == "mean":
        return neurons.hook_name, partial(_set_neurons, index=index, values=reference[..., index])
    if reference.ndim != 3:
        raise ConfigError("resample ablation needs reference activations [images, tokens, width]")

    def resample(activation: Tensor, hook: object) -> Tensor:
        picks = torch.randint(len(reference), (activation.shape[0],), generator=generator)
        return _set_neurons(activation, hook, index, reference[picks][..., index])

    return neurons.hook_name, resample


def patch_hook(neurons: NeuronSet, source: Tensor, token_mask: Tensor | None = None) -> tuple[str, HookFn]:
    """A ``(hook_name, fn)`` pair that copies ``neurons`` from ``source`` activations into the run.

    Args:
        source: activations of the source run at ``neurons.hook_name``, ``[batch, tokens, width]``.
        token_mask: optional ``[batch, tokens]`` bool; patch only these tokens (e.g. defect patches).
    """
    index = neurons.index_tensor()

    def patch(activation: Tensor, hook: object) -> Tensor:
        if source.shape != activation.shape:
            raise ConfigError(f"patch source shape {tuple(source.shape)} != activation shape {tuple(activation.shape)}")
        patched = activation.clone()
        if token_mask is None:
            patched[..., index] = source[..., index].to(activation.dtype)
        else:
            selected = patched[token_mask]  # [n_tokens, width]
            selected[:, index] = source[token_mask][:, index].to(activation.dtype)
            patched[token_mask] = selected
        return patched

    return neurons.hook_name, patch


@torch.no_grad()
def run_ablated(
    model: HookedViT,
    pixels: Tensor,
    neurons: Sequence[NeuronSet],
    mode: str = "zero",
    references: dict[str, Tensor] | None = None,
    names_filter: str | Sequence[str] | None = None,
    stop_at_layer: int | None = None,
    seed: int = 0,
):
    """Run ``model`` with ``neurons`` ablated; returns ``(output, cache)`` (cache of ``names_filter``).

    ``references`` maps each hook name to its reference tensor (see :func:`ablation_hook`).
    """
    generator = torch.Generator().manual_seed(seed)
    hooks = [
        ablation_hook(n.validate(model), mode, None if references is None else references.get(n.hook_name), generator)
        for n in neurons
    ]
    with model.hooks(fwd_hooks=hooks):
        return model.run_with_cache(pixels, names_filter=names_filter or (lambda name: False), stop_at_layer=stop_at_layer)


def _patch_neuron_setter(corrupted: Tensor, index: list[int], clean: Tensor) -> Tensor:
    """Patch setter for :func:`patch_each_neuron`: index row is ``[layer, neuron]``."""
    corrupted[..., index[1]] = clean[..., index[1]]
    return corrupted


def patch_each_neuron(
    model: HookedViT,
    corrupted_pixels: Tensor,
    clean_cache,
    metric: Callable[[Tensor], Tensor],
    site: str,
    index_df: pd.DataFrame,
) -> Tensor:
    """Patch one neuron at a time from a clean run into a corrupted run and measure ``metric``.

    Built on ``transformer_lens.patching.generic_activation_patch`` with an explicit index DataFrame
    (columns ``layer``, ``neuron``) instead of token positions. ``clean_cache`` must hold the site's
    activations of the clean run. Returns ``[len(index_df)]`` metric values.
    """
    from transformer_lens.patching import generic_activation_patch

    if list(index_df.columns) != ["layer", "neuron"]:
        raise ConfigError("index_df must have exactly the columns ['layer', 'neuron']")
    activation_name = {"resid": "resid_post", "mlp": "post"}[site]
    return generic_activation_patch(
        model, corrupted_pixels, clean_cache, metric, _patch_neuron_setter, activation_name, index_df=index_df
    )
