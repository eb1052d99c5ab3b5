"""Neuron ablation and activation patching on a small random model."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lake_interp import load_model
from lake_interp.errors import ConfigError
from lake_interp.interventions import (
    NeuronSet,
    ablation_hook,
    collect_site,
    patch_each_neuron,
    patch_hook,
    reference_mean,
    run_ablated,
)


@pytest.fixture(scope="module")
def model():
    return load_model("random-vit-tiny")


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("site", ["resid", "mlp"])
def test_zero_ablation_zeroes_neuron_and_changes_output(model, pixels, site):
    neurons = NeuronSet(site, 0, (1, 5))
    base = model(pixels)
    out, cache = run_ablated(model, pixels, [neurons], "zero", names_filter=neurons.hook_name)
    assert float(cache[neurons.hook_name][..., [1, 5]].abs().max()) == 0.0
    assert float((out - base).abs().max()) > 1e-4


def test_empty_ablation_changes_nothing(model, pixels):
    base = model(pixels)
    for mode in ("zero", "mean", "resample"):
        reference = torch.randn(2, 17, 128)
        out, _ = run_ablated(model, pixels, [NeuronSet("mlp", 1, ())], mode, references={"blocks.1.mlp.hook_post": reference})
        assert torch.equal(out, base)


def test_mean_ablation_sets_reference_mean(model, pixels):
    acts = collect_site(model, pixels, "mlp", 0)
    assert acts.shape == (3, 17, 128)
    mean = reference_mean(acts)
    neurons = NeuronSet("mlp", 0, (2, 3, 4))
    _, cache = run_ablated(model, pixels[:1], [neurons], "mean", references={neurons.hook_name: mean}, names_filter=neurons.hook_name)
    assert torch.allclose(cache[neurons.hook_name][0, :, [2, 3, 4]], mean[[2, 3, 4]].expand(17, 3))
    per_position = reference_mean(acts, per_position=True)
    _, cache = run_ablated(model, pixels[:1], [neurons], "mean", references={neurons.hook_name: per_position}, names_filter=neurons.hook_name)
    assert torch.allclose(cache[neurons.hook_name][0, :, [2, 3, 4]], per_position[:, [2, 3, 4]])


def test_resample_ablation_draws_reference_images(model, pixels):
    acts = collect_site(model, pixels, "resid", 0)
    neurons = NeuronSet("resid", 0, (0, 9))
    _, cache = run_ablated(model, pixels[:2], [neurons], "resample", references={neurons.hook_name: acts}, names_filter=neurons.hook_name, seed=4)
    got = cache[neurons.hook_name][..., [0, 9]]
    for image in got:
        assert any(torch.allclose(image, ref[:, [0, 9]]) for ref in acts)


def test_patching_every_neuron_reproduces_source(model, pixels):
    a, b = pixels[:1], pixels[1:2]
    name = "blocks.0.hook_resid_post"
    _, cache_a = model.run_with_cache(a)
    everything = NeuronSet("resid", 0, tuple(range(model.cfg.d_model)))
    with model.hooks(fwd_hooks=[patch_hook(everything, cache_a[name])]):
        out_patched, cache_patched = model.run_with_cache(b)
    for hook in (name, "blocks.1.hook_resid_pre", "blocks.1.mlp.hook_post", "blocks.1.hook_resid_post"):
        assert torch.allclose(cache_patched[hook], cache_a[hook], atol=1e-6)
    assert torch.allclose(out_patched, model(a), atol=1e-6)


def test_patching_only_masked_tokens(model, pixels):
    a, b = pixels[:1], pixels[1:2]
    neurons = NeuronSet("mlp", 1, (0, 1, 2))
    _, cache_a = model.run_with_cache(a, names_filter=neurons.hook_name)
    _, cache_b = model.run_with_cache(b, names_filter=neurons.hook_name)
    mask = torch.zeros(1, 17, dtype=torch.bool)
    mask[0, 5] = True
    with model.hooks(fwd_hooks=[patch_hook(neurons, cache_a[neurons.hook_name], token_mask=mask)]):
        _, cache = model.run_with_cache(b, names_filter=neurons.hook_name)
    got = cache[neurons.hook_name]
    assert torch.equal(got[0, 5, :3], cache_a[neurons.hook_name][0, 5, :3])
    assert torch.equal(got[0, 4], cache_b[neurons.hook_name][0, 4])
    assert torch.equal(got[0, 5, 3:], cache_b[neurons.hook_name][0, 5, 3:])


def test_patch_each_neuron_with_transformer_lens_driver(model, pixels):
    clean, corrupted = pixels[:1], pixels[1:2]
    _, clean_cache = model.run_with_cache(clean)
    target = model(clean)[0, 0]
    metric = lambda out: -(out[0, 0] - target).norm()  # noqa: E731
    index_df = pd.DataFrame({"layer": [1, 1, 1], "neuron": [0, 1, 2]})
    effects = patch_each_neuron(model, corrupted, clean_cache, metric, "resid", index_df)
    assert effects.shape == (3,)
    # patching a single neuron of the last residual stream changes only that channel before ln_final
    base = float(metric(model(corrupted)))
    assert all(float(e) != base for e in effects)


def test_bad_neuron_sets(model):
    with pytest.raises(ConfigError):
        NeuronSet("attn", 0, (1,))
    with pytest.raises(ConfigError):
        NeuronSet("mlp", 0, (1, 1))
    with pytest.raises(ConfigError, match="out of range"):
        NeuronSet("resid", 0, (999,)).validate(model)
    with pytest.raises(ConfigError):
        ablation_hook(NeuronSet("mlp", 0, (1,)), "mean")
