"""The LAKE detector on small random models and synthetic images (mechanics, known answers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lake_interp import load_model
from lake_interp.detector import LakeConfig, LakeDetector
from lake_interp.detector.maps import gaussian_blur, image_scores, nearest_distance
from lake_interp.detector.selection import select_neurons, sensitivity
from lake_interp.errors import ConfigError, LakeError

SIZE = 112  # 8 x 8 patches of 14 px


@pytest.fixture(scope="module")
def model():
    return load_model("random-dinov2-small", image_size=SIZE)


def texture(seed: int, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(128, 12, (size, size, 3))
    stripes = 40 * np.sin(np.arange(size) / 3.0)[None, :, None]
    return np.clip(base + stripes, 0, 255).astype(np.uint8)


def with_defect(array: np.ndarray, row: int, col: int) -> np.ndarray:
    out = array.copy()
    out[row * 14 : (row + 2) * 14, col * 14 : (col + 2) * 14] = (255, 0, 255)
    return out


@pytest.fixture(scope="module")
def support():
    return [Image.fromarray(texture(s)) for s in range(3)]


def cfg(**kw) -> LakeConfig:
    return LakeConfig(model="random-dinov2-small", image_size=SIZE, layers=(2,), k_neurons=64, **kw)


def test_planted_defect_is_found(model, support):
    detector = LakeDetector(cfg(), model).fit(support)
    normal = Image.fromarray(texture(10))
    defective = Image.fromarray(with_defect(texture(11), 2, 5))
    prediction = detector.predict([normal, defective], output_size=(SIZE, SIZE))
    assert prediction.scores[1] > prediction.scores[0]
    patch_map = prediction.patch_maps[1]
    row, col = np.unravel_index(np.argmax(patch_map), patch_map.shape)
    assert 2 <= row <= 3 and 5 <= col <= 6
    assert prediction.maps[1].shape == (SIZE, SIZE)
    assert prediction.text_branch == "off (image-only backbone)"


def test_identical_image_scores_at_normal_level(model, support):
    detector = LakeDetector(cfg(map_norm="none"), model).fit(support)
    prediction = detector.predict(support[:1])
    assert float(np.abs(prediction.patch_maps).max()) < 1e-5


def test_all_channels_equals_knn_all(model, support):
    width = model.cfg.d_model
    test = [Image.fromarray(with_defect(texture(20), 4, 1))]
    top_all = LakeDetector(cfg().replace(k_neurons=width), model).fit(support).predict(test)
    knn = LakeDetector(LakeConfig.for_method("knn-all", model="random-dinov2-small", image_size=SIZE, layers=(2,)), model)
    knn_pred = knn.fit(support).predict(test)
    assert np.allclose(top_all.patch_maps, knn_pred.patch_maps, atol=1e-4)  # same channels, other order
    assert knn.config.method == "knn-all"


def test_save_load_reproduces_predictions(model, support, tmp_path):
    detector = LakeDetector(cfg(standardize=True, position_bias=True, suppress_artifacts=True), model).fit(support)
    test = [Image.fromarray(with_defect(texture(30), 1, 1)), Image.fromarray(texture(31))]
    before = detector.predict(test)
    detector.save(tmp_path / "det")
    loaded = LakeDetector.load(tmp_path / "det", model=model)
    after = loaded.predict(test)
    assert np.array_equal(before.scores, after.scores)
    assert all(np.array_equal(a, b) for a, b in zip(before.maps, after.maps))
    assert loaded.config == detector.config and loaded.selected_neurons() == detector.selected_neurons()


def test_load_rejects_missing_folder_and_other_backbone(model, tmp_path):
    with pytest.raises(LakeError, match="saved detector"):
        LakeDetector.load(tmp_path)


def test_selection_controls_choose_the_right_neurons(model, support):
    top = LakeDetector(cfg(), model).fit(support)
    bottom = LakeDetector(cfg(selection="bottom"), model).fit(support)
    rand = LakeDetector(cfg(selection="random", selection_seed=1), model).fit(support)
    scores = top.layers[2].scores
    assert float(scores[top.layers[2].indices].min()) >= float(scores[bottom.layers[2].indices].max())
    assert set(top.layers[2].indices.tolist()) != set(rand.layers[2].indices.tolist())
    again = LakeDetector(cfg(selection="random", selection_seed=1), model).fit(support)
    assert torch.equal(rand.layers[2].indices, again.layers[2].indices)


def test_explain_patch_contributions_sum_to_distance(model, support):
    detector = LakeDetector(cfg(map_norm="none"), model).fit(support)
    feats = detector.extract([Image.fromarray(with_defect(texture(40), 3, 3))])
    table = detector.explain_patch(feats, image=0, row=3, col=3)
    distance = detector.patch_scores(feats)[0, 3, 3]
    assert table["contribution"].sum() == pytest.approx(float(distance), abs=1e-5)
    assert table["contribution"].is_monotonic_decreasing and len(table) == 64


def test_forward_stops_after_deepest_layer(model, support):
    fired = []
    detector = LakeDetector(cfg(), model)
    with model.hooks(fwd_hooks=[("blocks.3.hook_resid_pre", lambda a, hook: fired.append(1))]):
        detector.extract(support[:1])
    assert not fired


def test_multi_layer_and_mlp_site(model, support):
    detector = LakeDetector(cfg(site="mlp").replace(layers=(1, 3)), model).fit(support)
    assert set(detector.selected_neurons()) == {1, 3}
    assert max(max(v) for v in detector.selected_neurons().values()) < model.cfg.d_mlp
    assert detector.predict(support[:1]).scores.shape == (1,)


def test_memory_of_k_neurons_is_smaller(model, support):
    small = LakeDetector(cfg(), model).fit(support).memory_bytes()
    full = LakeDetector(cfg(selection="all"), model).fit(support).memory_bytes()
    assert small < full / 4


def test_bad_configurations(model, support):
    with pytest.raises(ConfigError, match="image-only"):
        LakeDetector(cfg(text_branch=True), model)
    with pytest.raises(ConfigError, match="at least 2"):
        LakeDetector(cfg(position_bias=True), model).fit(support[:1])
    with pytest.raises(ConfigError):
        LakeConfig(site="attn")
    with pytest.raises(ConfigError):
        LakeConfig(layers=())
    with pytest.raises(ConfigError, match="out of range"):
        LakeDetector(cfg().replace(layers=(9,)), model).fit(support)
    with pytest.raises(LakeError, match="not fitted"):
        LakeDetector(cfg(), model).predict(support)
    with pytest.raises(ConfigError):
        LakeDetector(cfg(), model).fit([])


def test_single_support_image_works(model, support):
    detector = LakeDetector(cfg(), model).fit(support[:1])
    state = detector.layers[2]
    assert np.isfinite(state.dist_mean) and state.dist_std > 0


def test_clip_text_branch_fusion():
    clip = load_model("random-clip-tiny")
    images = [Image.fromarray(texture(s, 32)) for s in range(3)]
    base = dict(model="random-clip-tiny", image_size=32, layers=(0,), k_neurons=8)
    fused = LakeDetector(LakeConfig(**base), clip).fit(images[:2], object_name="screw")
    assert fused.text_on and fused.text_branch_status == "on"
    visual_only = LakeDetector(LakeConfig(**base, text_branch=False), clip).fit(images[:2])
    no_weight = LakeDetector(LakeConfig(**base, fusion_lambda=0.0), clip).fit(images[:2], object_name="screw")
    feats = fused.extract(images[2:])
    assert torch.allclose(no_weight.patch_scores(feats), visual_only.patch_scores(feats), atol=1e-6)
    assert not torch.allclose(fused.patch_scores(feats), visual_only.patch_scores(feats))
    zero_shot = LakeDetector(LakeConfig.for_method("text-zero-shot", **base), clip).fit(images[:1], object_name="screw")
    assert zero_shot.config.method == "text-zero-shot" and zero_shot.predict(images[2:]).scores.shape == (1,)
    no_support = LakeDetector(LakeConfig.for_method("text-zero-shot", **base, map_norm="none"), clip).fit([], object_name="screw")
    assert no_support.text_stats == (0.0, 1.0)
    text_map = no_support.patch_scores(no_support.extract(images[2:]))
    assert float(text_map.min()) > 0 and float(text_map.max()) < 1  # probabilities of the anomalous prompts


def test_map_helpers():
    x = torch.nn.functional.normalize(torch.randn(20, 5), dim=-1)
    assert torch.allclose(nearest_distance(x, x, "cosine"), torch.zeros(20), atol=1e-6)
    assert torch.allclose(nearest_distance(x, x, "l2"), torch.zeros(20), atol=1e-3)
    impulse = torch.zeros(1, 41, 41)
    impulse[0, 20, 20] = 1.0
    blurred = gaussian_blur(impulse, 4.0)
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5) and float(blurred.max()) < 0.02
    maps = torch.arange(100.0).view(1, 10, 10)
    assert float(image_scores(maps, "max")) == 99.0
    assert float(image_scores(maps, "topq", 0.02)) == 98.5
    acts = torch.randn(1000, 6) * torch.tensor([1.0, 5.0, 2.0, 0.5, 3.0, 4.0])
    assert select_neurons(sensitivity(acts), 2, "top").tolist() == [1, 5]
    assert select_neurons(sensitivity(acts, "mad"), 2, "bottom").tolist() == [3, 0]
