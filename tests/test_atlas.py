"""The neuron atlas: schema, selection identical to the detector's, statistics equal a direct computation."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lake_interp import load_model
from lake_interp.atlas import ATLAS_COLUMNS, PATCH_COLUMNS, build_atlas, compact_atlas, load_atlas
from lake_interp.data import load_category, make_synthetic_category, sample_support
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.features import extract_features
from lake_interp.detector.selection import normalize_tokens
from lake_interp.errors import ConfigError, LakeError
from lake_interp.studies.common import DEFECT_FRACTION, defect_fractions

SHOTS = 3


@pytest.fixture(scope="module")
def model():
    return load_model("random-vit-tiny")


@pytest.fixture(scope="module")
def config():
    return LakeConfig(model="random-vit-tiny", image_size=32, layers=(1,), k_neurons=8, batch_size=4)


@pytest.fixture(scope="module")
def category_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_category(root, size=64, n_train=4, n_test_good=2, n_test_defect=4)


@pytest.fixture(scope="module")
def atlas(model, config, category_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas") / "ATLAS"
    build_atlas(None, None, model_name="random-vit-tiny", shots=SHOTS, seed=0, output=out, progress=False,
                category_paths=[category_path], model=model, config=config, top_patches=4, effect_neurons=3,
                crop_size=16)
    return out


def test_files_and_schema_documented(atlas):
    assert {p.name for p in atlas.iterdir()} >= {"atlas.parquet", "patches.parquet", "schema.md", "meta.json"}
    assert not [p for p in atlas.iterdir() if p.name.endswith(".tmp")]
    df, patches, meta = load_atlas(atlas)
    assert list(df.columns) == list(ATLAS_COLUMNS)
    assert list(patches.columns) == list(PATCH_COLUMNS)
    schema = (atlas / "schema.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", schema, flags=re.M))
    assert set(ATLAS_COLUMNS) | set(PATCH_COLUMNS) <= documented
    assert meta["k"] == SHOTS and meta["defect_fraction"] == DEFECT_FRACTION
    # one row per (category, site, layer, neuron): 2 layers x (32 resid + 128 mlp)
    assert len(df) == 2 * (32 + 128)
    assert not df.duplicated(["category", "site", "layer", "neuron"]).any()
    assert df.dtypes["layer"] == np.int64 and df.dtypes["selected"] == bool


def test_selection_equals_detector(atlas, model, config, category_path):
    df, _, _ = load_atlas(atlas)
    category = load_category(category_path)
    support = [s.path for s in sample_support(category, SHOTS, 0)]
    for site in ("resid", "mlp"):
        for layer in (0, 1):
            cfg = config.replace(site=site, layers=(layer,))
            det = LakeDetector(cfg, model).fit_features(extract_features(model, cfg, support))
            part = df[(df.site == site) & (df.layer == layer)].sort_values("neuron")
            assert set(part[part.selected].neuron) == set(det.selected_neurons()[layer])
            np.testing.assert_allclose(part.sensitivity.to_numpy(), det.layers[layer].scores.numpy(), rtol=1e-5, atol=1e-7)
            assert int(part.loc[part["rank"] == 0, "neuron"].iloc[0]) == int(det.layers[layer].scores.argmax())


def test_statistics_equal_direct_computation(atlas, model, config, category_path):
    df, patches, _ = load_atlas(atlas)
    category = load_category(category_path)
    test = list(category.test)
    site, layer = "mlp", 1
    cfg = config.replace(site=site, layers=(layer,))
    feats = extract_features(model, cfg, [s.path for s in test])
    acts = normalize_tokens(feats.layers[layer].float(), cfg.feature_norm).double()  # [n, patches, width]
    frac = torch.from_numpy(defect_fractions(test, feats.sizes, feats.grid).reshape(len(test), -1))
    defect, normal = acts[frac > DEFECT_FRACTION], acts[frac == 0]  # [m, width]
    part = df[(df.site == site) & (df.layer == layer)].sort_values("neuron")
    assert int(part.n_defect_patches.iloc[0]) == len(defect) > 1
    np.testing.assert_allclose(part.defect_mean, defect.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(part.defect_std, defect.std(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(part.test_normal_mean, normal.mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(part.test_normal_std, normal.std(0).numpy(), atol=1e-5)
    n1, n2 = len(normal), len(defect)
    pooled = np.sqrt(((n1 - 1) * normal.std(0).numpy() ** 2 + (n2 - 1) * defect.std(0).numpy() ** 2) / (n1 + n2 - 2))
    np.testing.assert_allclose(part.effect_size, (defect.mean(0).numpy() - normal.mean(0).numpy()) / pooled, atol=1e-4)
    support = extract_features(model, cfg, [s.path for s in sample_support(category, SHOTS, 0)])
    flat = normalize_tokens(support.layers[layer].float(), cfg.feature_norm).reshape(-1, 128).double()
    np.testing.assert_allclose(part.normal_mean, flat.mean(0).numpy(), atol=1e-5)
    # top-activating defect patches: the activations of the best ones
    neuron = int(part[part.selected].neuron.iloc[0])
    rows = patches[(patches.site == site) & (patches.layer == layer) & (patches.neuron == neuron)]
    got = rows[rows.kind == "defect"].sort_values("rank").activation.to_numpy()
    want = np.sort(defect[:, neuron].numpy())[::-1][: len(got)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    first = rows.iloc[0]
    image = Image.open(io.BytesIO(first.png))
    assert image.size == (16, 16) and image.mode == "RGB"
    assert (Path(category_path) / first.image).is_file()


def test_patches_cover_selected_and_effect_neurons(atlas):
    df, patches, _ = load_atlas(atlas)
    for (site, layer), part in df.groupby(["site", "layer"]):
        with_patches = set(patches[(patches.site == site) & (patches.layer == layer)].neuron)
        assert set(part[part.selected].neuron) <= with_patches
        top_effect = part.reindex(part.effect_size.abs().sort_values(ascending=False).index).neuron.head(3)
        assert set(top_effect) <= with_patches
        assert patches["rank"].max() <= 3


def test_compact_atlas(atlas, tmp_path):
    out = compact_atlas(atlas, tmp_path / "small", patch_layers=[1], crop_size=8)
    _, patches, meta = load_atlas(out)
    assert set(patches.layer) == {1} and meta["patch_layers"] == [1]
    assert Image.open(io.BytesIO(patches.png.iloc[0])).size == (8, 8)


def test_load_atlas_rejects_other_folders(tmp_path):
    with pytest.raises(LakeError, match="not an atlas folder"):
        load_atlas(tmp_path)


def test_bad_options(model, tmp_path):
    with pytest.raises(ConfigError):
        build_atlas(None, None, model=model, output=tmp_path / "a", layers=[5], progress=False)
    with pytest.raises(ConfigError):
        build_atlas(None, None, model=model, output=tmp_path / "a", sites=["attn"], progress=False)


def test_demo_category_by_default(model, config, tmp_path):
    out = build_atlas(None, None, shots=2, output=tmp_path / "demo", model=model, config=config, layers=[1],
                      sites=("resid",), progress=False, effect_neurons=0, top_patches=1)
    df, _, meta = load_atlas(out)
    assert set(df.category) == {"ball_screw"} and meta["categories"][0]["n_test_images"] == 20
    # pitting is small: on a 4x4 grid no patch may be > 25 % defect; then the defect statistics are NaN
    n_defect = int(df.n_defect_patches.iloc[0])
    assert n_defect == meta["categories"][0]["n_defect_patches"]
    assert df.defect_mean.isna().all() == (n_defect == 0)


@pytest.mark.integration
def test_real_backbone_tiny_real_category(ball_screw_root, tmp_path):
    """dinov2-s14 on a handful of real ball-screw images: selection equals the detector's."""
    root = tmp_path / "bsdata" / "ball_screw"
    for sub, n in (("train/good", 2), ("test/good", 1), ("test/pitting", 2)):
        (root / sub).mkdir(parents=True)
        for f in sorted((ball_screw_root / sub).iterdir())[:n]:
            shutil.copy(f, root / sub / f.name)
            if sub == "test/pitting":
                (root / "ground_truth/pitting").mkdir(parents=True, exist_ok=True)
                mask = ball_screw_root / "ground_truth/pitting" / f"{f.stem}_mask.png"
                shutil.copy(mask, root / "ground_truth/pitting" / mask.name)
    model = load_model("dinov2-s14")
    out = build_atlas(None, None, shots=2, output=tmp_path / "atlas", model=model, layers=[3], sites=("resid",),
                      category_paths=[root], progress=False, effect_neurons=2, top_patches=2)
    df, patches, _ = load_atlas(out)
    cfg = LakeConfig().replace(model="dinov2-s14", site="resid", layers=(3,))
    support = [s.path for s in sample_support(load_category(root), 2, 0)]
    det = LakeDetector(cfg, model).fit(support)
    assert set(df[df.selected].neuron) == set(det.selected_neurons()[3])
    assert df.model.iloc[0] == model.cfg.description and not patches.empty
