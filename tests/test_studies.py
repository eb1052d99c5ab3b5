"""The causal studies on a random ViT and a synthetic category: mechanics and sanity checks."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from lake_interp import load_model
from lake_interp.data import load_category, make_synthetic_category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.features import extract_features
from lake_interp.errors import ConfigError, DataLayoutError
from lake_interp.evaluation import evaluate_category
from lake_interp.metrics import evaluate
from lake_interp.studies import ablation, common, overlap, patching, robustness, selection_controls


@pytest.fixture(scope="module")
def model():
    return load_model("random-vit-tiny")


@pytest.fixture(scope="module")
def base():
    return LakeConfig(model="random-vit-tiny", image_size=32, layers=(1,), k_neurons=8, batch_size=8)


@pytest.fixture(scope="module")
def category(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return load_category(make_synthetic_category(root, size=64, n_train=4, n_test_good=3, n_test_defect=5))


def _check_figures(figs):
    assert figs and all(isinstance(f, go.Figure) and len(f.data) > 0 for f in figs.values())


# ------------------------------------------------------------------------------------------ common
def test_resolve_categories(tmp_path, category):
    assert [c.name for c in common.resolve_categories(None, None)] == ["ball_screw"]
    root = category.root.parent
    assert [c.name for c in common.resolve_categories(root, [category.name])] == [category.name]
    with pytest.raises(DataLayoutError, match="not found"):
        common.resolve_categories(root, ["nope"])


def test_subsample_test_is_stratified_and_seeded(category):
    sub = common.subsample_test(category, 2, 3, seed=1)
    assert sum(s.label == 0 for s in sub.test) == 2 and sum(s.label == 1 for s in sub.test) == 3
    assert sub.test == common.subsample_test(category, 2, 3, seed=1).test


# ------------------------------------------------------------------------------ selection controls
def test_selection_controls_rows_match_evaluation_harness(model, base, category):
    df = selection_controls.run([category], model, shots=(2,), seeds=(0,), sites=("resid",), layers=(0, 1),
                                k_values=(4, 8, 64), random_seeds=(0, 1), base=base, eval_size=64, progress=False)
    at1 = df[df.layer == 1]
    # K sweep at the detector layer (K >= width 32 dropped), default K only at the other layer
    assert sorted(at1[at1.selection == "top"].n_neurons) == [4, 8]
    assert sorted(df[(df.layer == 0) & (df.selection == "top")].n_neurons) == [8]
    assert set(df.selection) == {"top", "random", "bottom", "all"}
    assert len(at1[(at1.selection == "random") & (at1.n_neurons == 8)]) == 2
    assert df.pixel_aupro.notna().all()
    # the same numbers as the lead's evaluation harness for the same configuration
    harness = evaluate_category(category, {"lake": base, "knn-all": base.replace(selection="all")}, shots=[2],
                                seeds=[0], model=model, eval_size=64, progress=False)
    by_method = {row["method"]: row for row in harness}
    top = at1[(at1.selection == "top") & (at1.n_neurons == 8)].iloc[0]
    full = at1[at1.selection == "all"].iloc[0]
    assert top.image_auroc == pytest.approx(by_method["lake"]["image_auroc"], abs=1e-9)
    assert top.pixel_aupro == pytest.approx(by_method["lake"]["pixel_aupro"], abs=1e-6)
    assert full.image_auroc == pytest.approx(by_method["knn-all"]["image_auroc"], abs=1e-9)
    _check_figures(selection_controls.figures(df))
    assert {"top_image_auroc", "all_pixel_aupro"} <= set(selection_controls.headline(df, 8).columns)


# ---------------------------------------------------------------------------------------- ablation
def test_ablating_an_empty_set_changes_nothing(model, base, category):
    df = ablation.run([category], model, shots=2, sites=("resid", "mlp"), n_neurons=0, random_seeds=(0,),
                      modes=("zero",), neuron_sets=("top", "random"), base=base, eval_size=64, progress=False)
    assert len(df) == 2 * 2 * 2 * 2  # sites x ablation layers x sets x variants
    assert df.n_ablated.eq(0).all()
    for column in ("d_image_auroc", "d_pixel_aupro", "normal_change_detector_layer", "normal_change_last_layer"):
        assert df[column].abs().max() == 0.0
    assert df.refit_jaccard.eq(1.0).all()


def test_ablation_changes_features_and_reports_both_variants(model, base, category):
    df = ablation.run([category], model, shots=2, sites=("resid",), random_seeds=(0,), base=base, eval_size=64,
                      progress=False)
    assert set(df.relation) == {"same", "earlier"} and set(df.variant) == {"fixed", "refit"}
    assert set(df["mode"]) == {"zero", "mean"}
    assert (df.normal_change_last_layer > 0).all()
    same_top = df[(df.relation == "same") & (df.neuron_set == "top")]
    assert same_top.frac_of_detector_set.eq(1.0).all()
    # zeroing the detector's own channels: the refitted detector must pick other channels
    assert (same_top[same_top["mode"] == "zero"].refit_jaccard < 1).all()
    _check_figures(ablation.figures(df))
    with pytest.raises(ConfigError, match="ablation layers"):
        ablation.run([category], model, shots=2, ablate_layers=(0, 1, 2), layer=1, base=base, progress=False)


# ---------------------------------------------------------------------------------------- patching
def test_patching_all_neurons_at_detector_layer_removes_anomaly(model, base, category):
    df = patching.run([category], model, shots=2, sites=("resid", "mlp"), neuron_sets=("all", "top", "random"),
                      random_seeds=(0,), patch_layers=(0, 1), base=base, progress=False)
    sanity = df[(df.neuron_set == "all") & (df.relation == "same")]
    assert len(sanity) == 2
    np.testing.assert_allclose(sanity.removed_frac, 1.0, atol=1e-4)
    assert (sanity.defect_dist_patched.abs() < 1e-4 * sanity.defect_dist_orig).all()
    assert (df.n_defect_patches > 0).all() and (df.defect_dist_orig > df.normal_dist).any()
    top = df[df.neuron_set == "top"]
    assert top.n_neurons.eq(8).all()
    # patching at an earlier layer changes the detector-layer distances through the forward pass
    earlier = df[df.relation == "earlier"]
    assert (earlier.defect_dist_patched != earlier.defect_dist_orig).all()
    _check_figures(patching.figures(df))


def test_nearest_normal_values_come_from_support(model, base, category):
    support = [s.path for s in sample_support(category, 2, 0)]
    cfg = base.replace(site="resid", layers=(1,))
    sfeats = extract_features(model, cfg, support)
    det = LakeDetector(cfg, model).fit_features(sfeats)
    test = extract_features(model, cfg, [category.test[0].path])
    mask = np.zeros((1, test.layers[1].shape[1]), dtype=bool)
    mask[0, :3] = True
    import torch

    idx, values = patching.nearest_normal_values(det, 1, test.layers[1], sfeats.layers[1], torch.from_numpy(mask))
    flat = sfeats.layers[1].reshape(-1, 32)[:, idx]
    for row in values:
        assert torch.isclose(flat, row).all(dim=1).any()


# ----------------------------------------------------------------------------------------- overlap
def test_jaccard_pairs_and_universal_neurons():
    rows = []
    for dataset, category, seed, neurons in [("d1", "a", 0, [1, 2, 3]), ("d1", "a", 1, [2, 3, 4]),
                                             ("d2", "b", 0, [3, 5, 6]), ("d2", "b", 1, [3, 5, 7])]:
        rows += [dict(model="m", dataset=dataset, category=category, site="resid", layer=0, width=10, k=1, seed=seed,
                      neuron=n, rank=r, sensitivity=1.0) for r, n in enumerate(neurons)]
    pairs = overlap.jaccard_pairs(pd.DataFrame(rows))
    draws = pairs[pairs.comparison == "draws"].set_index("a").jaccard
    assert draws["d1/a#0"] == pytest.approx(2 / 4) and draws["d2/b#0"] == pytest.approx(2 / 4)
    across = pairs[pairs.comparison == "datasets"].set_index("a").jaccard
    assert across["d1/a#0"] == pytest.approx(1 / 5) and across["d1/a#1"] == pytest.approx(1 / 5)
    assert len(pairs) == 4  # cross-category pairs only at equal seeds
    uni = overlap.universal_neurons(pd.DataFrame(rows)).set_index("scope")
    assert uni.loc["all categories", "neurons"] == "3" and uni.loc["d1/a", "neurons"] == "2 3"
    rng = np.random.default_rng(0)
    sims = [len(set(rng.choice(50, 10, replace=False)) & set(rng.choice(50, 10, replace=False))) for _ in range(4000)]
    mc = np.mean([s / (20 - s) for s in sims])
    assert overlap.expected_random_jaccard(10, 50) == pytest.approx(mc, abs=0.01)


def test_collect_selections_match_detector(model, base, category):
    sel = overlap.collect_selections([category], model, shots=(2,), seeds=(0, 1), sites=("mlp",), layers=(1,),
                                     base=base, progress=False)
    cfg = base.replace(site="mlp", layers=(1,))
    det = LakeDetector(cfg, model).fit([s.path for s in sample_support(category, 2, 1)])
    got = sel[sel.seed == 1].sort_values("rank").neuron.tolist()
    assert got == det.selected_neurons()[1]
    pairs = overlap.run([category], model, shots=(2,), seeds=(0, 1), sites=("mlp",), layers=(1,), base=base, progress=False)
    assert len(pairs) == 1 and 0 <= pairs.jaccard.iloc[0] <= 1
    _check_figures(overlap.figures(pairs))


# -------------------------------------------------------------------------------------- robustness
def test_robustness_contaminant_in_support_and_out_of_test(model, base, category):
    methods = {"lake": base, "knn-all": base.replace(selection="all")}
    df = robustness.run([category], model, shots=2, seeds=(0,), methods=methods, eval_size=64, progress=False)
    assert len(df) == 4 and df.n_test.eq(len(category.test) - 1).all()
    bad = df.contaminant.iloc[0]
    assert bad.startswith("test/") and df.contaminant.nunique() == 1
    # contaminated detector == fitting on (first k-1 clean images + the defective image), scored without it
    support = sample_support(category, 2, 0)
    paths = [support[0].path, category.root / bad]
    det = LakeDetector(base.replace(model=model.cfg.name), model).fit(paths)
    kept = [s for s in category.test if not str(s.path).endswith(bad)]
    pred = det.predict([s.path for s in kept], output_size=(64, 64))
    test = common.load_test_data(common.dataclasses.replace(category, test=tuple(kept)), model, {"resid": (1,)}, 32, 64)
    want = evaluate(pred.scores, test.labels, pred.maps, test.masks, 64)
    got = df[(df.method == "lake") & (df.condition == "contaminated")].iloc[0]
    assert got.image_auroc == pytest.approx(want["image_auroc"], abs=1e-9)
    assert df[df.method == "knn-all"].selected_jaccard.eq(1.0).all()
    d = robustness.drops(df)
    assert len(d) == 2 and {"drop_image_auroc", "drop_pixel_aupro"} <= set(d.columns)
    _check_figures(robustness.figures(df))


# ------------------------------------------------------------------------------------- integration
@pytest.mark.integration
def test_patching_sanity_on_real_backbone(ball_screw_root, tmp_path):
    """dinov2-s14, two real ball-screw defects: patching all channels at the detector layer removes the anomaly."""
    root = tmp_path / "bsdata" / "ball_screw"
    real = load_category(ball_screw_root)
    anomalous, normal = patching.choose_images(real, (16, 16), 2, 1, seed=0)  # pitting is small: images with defect patches
    for sample in [*real.train[:2], *normal, *anomalous]:
        target = root / sample.path.relative_to(ball_screw_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample.path, target)
        if sample.mask_path is not None:
            mask = root / sample.mask_path.relative_to(ball_screw_root)
            mask.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sample.mask_path, mask)
    model = load_model("dinov2-s14")
    df = patching.run([load_category(root)], model, shots=2, sites=("resid",), layer=3, patch_layers=(1, 3),
                      neuron_sets=("all",), progress=False)
    same = df[df.patch_layer == 3].iloc[0]
    assert same.removed_frac == pytest.approx(1.0, abs=1e-3)
    assert df[df.patch_layer == 1].removed_frac.iloc[0] < 1.0
