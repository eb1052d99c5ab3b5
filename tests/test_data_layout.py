"""Tests of the data-layout readers on synthetic folders and (when available) the real data sets."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lake_interp.data import (
    Category,
    CategoryRef,
    MissingMaskWarning,
    Sample,
    find_categories,
    load_category,
    load_folder_category,
    load_mvtec_category,
    load_sample_mask,
    load_visa_category,
    make_synthetic_category,
    resolve_data_root,
)
from lake_interp.errors import DataLayoutError, ImageReadError, LakeError


def _img(path: Path, size=(16, 16), value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def _mask(path: Path, size=(16, 16), box=(2, 2, 6, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), np.uint8)
    arr[box[1] : box[3], box[0] : box[2]] = 255
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "synthds"
    make_synthetic_category(root, name="brick", texture="brick", n_train=5, n_test_good=3, n_test_defect=6, size=48)
    return root / "brick"


def test_mvtec_reader_on_synthetic(synth_root):
    cat = load_category(synth_root)
    assert isinstance(cat, Category)
    assert (cat.name, cat.dataset, cat.root) == ("brick", "synthds", synth_root)
    assert cat.defects == ("cut_paste", "hole", "scratch", "stain")
    summary = cat.summary()
    assert summary["train"] == 5 and summary["test_good"] == 3 and summary["test_defective"] == 6
    assert summary["per_defect"] == {"cut_paste": 1, "hole": 2, "scratch": 2, "stain": 1}
    assert summary["masks"] == 6 and summary["maskless"] == 0 and cat.has_masks
    for s in cat.test:
        if s.label == 1:
            assert s.mask_path == synth_root / "ground_truth" / s.defect / f"{s.path.stem}_mask.png"
        else:
            assert s.defect == "good" and s.mask_path is None
    assert [s.path.name for s in cat.train] == sorted(s.path.name for s in cat.train)
    assert all(s.label == 0 and s.defect == "good" for s in cat.train)


def _tiny_mvtec(root: Path, n_train=2) -> Path:
    for i in range(n_train):
        _img(root / "train" / "good" / f"{i:03d}.png")
    _img(root / "test" / "good" / "000.png")
    _img(root / "test" / "dent" / "000.png")
    _img(root / "test" / "dent" / "001.PNG")  # upper-case extension
    _img(root / "test" / "dent" / "002.jpg")
    _mask(root / "ground_truth" / "dent" / "000_mask.png")
    _mask(root / "ground_truth" / "dent" / "001.png")  # BTAD-style name
    return root


def test_mask_names_hidden_files_and_maskless_warning(tmp_path):
    root = _tiny_mvtec(tmp_path / "ds" / "widget")
    (root / "test" / "dent" / ".hidden.png").write_bytes(b"junk")
    (root / "test" / "dent" / "notes.txt").write_text("not an image")
    (root / "train" / "good" / ".DS_Store").write_bytes(b"junk")
    with pytest.warns(MissingMaskWarning, match="002.jpg") as record:
        cat = load_category(root)
    assert len([w for w in record if issubclass(w.category, MissingMaskWarning)]) == 1
    dent = [s for s in cat.test if s.defect == "dent"]
    assert [s.path.name for s in dent] == ["000.png", "001.PNG", "002.jpg"]
    assert dent[0].mask_path.name == "000_mask.png" and dent[1].mask_path.name == "001.png"
    assert dent[2].mask_path is None
    assert cat.maskless == (dent[2],)  # kept (image metrics) and reported
    assert len(cat.train) == 2 and cat.summary()["maskless"] == 1


def test_mask_suffix_preferred_over_plain_name(tmp_path):
    root = _tiny_mvtec(tmp_path / "ds" / "w")
    _mask(root / "ground_truth" / "dent" / "000.png")
    _mask(root / "ground_truth" / "dent" / "002_mask.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingMaskWarning)
        cat = load_category(root)
    assert {s.path.name: s.mask_path.name for s in cat.test if s.label}["000.png"] == "000_mask.png"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no_root", "does not exist"),
        ("no_train_good", "train/good"),
        ("empty_train_good", "contains no images"),
        ("no_test", "no test folder"),
        ("empty_test", "empty"),
    ],
)
def test_layout_errors(tmp_path, breakage, message):
    root = tmp_path / "ds" / "broken"
    if breakage != "no_root":
        _img(root / "train" / "good" / "000.png")
        _img(root / "test" / "good" / "000.png")
    if breakage == "no_train_good":
        (root / "train" / "good" / "000.png").unlink()
        (root / "train" / "good").rmdir()
    elif breakage == "empty_train_good":
        (root / "train" / "good" / "000.png").unlink()
    elif breakage == "no_test":
        (root / "test" / "good" / "000.png").unlink()
        (root / "test" / "good").rmdir()
        (root / "test").rmdir()
    elif breakage == "empty_test":
        (root / "test" / "good" / "000.png").unlink()
        (root / "test" / "crack").mkdir()
    with pytest.raises(DataLayoutError, match=message) as info:
        load_mvtec_category(root)
    assert "broken" in str(info.value)


def test_find_categories_two_levels(tmp_path):
    _tiny_mvtec(tmp_path / "dsA" / "cat2")
    _tiny_mvtec(tmp_path / "dsA" / "cat1")
    _tiny_mvtec(tmp_path / "solo")  # directly below the root: dataset = root folder name
    _tiny_mvtec(tmp_path / ".hidden" / "x")
    _tiny_mvtec(tmp_path / "deep" / "a" / "b" / "toodeep")  # three levels: not searched
    refs = find_categories(tmp_path)
    assert [(r.dataset, r.name) for r in refs] == sorted(
        [("dsA", "cat1"), ("dsA", "cat2"), (tmp_path.name, "solo")]
    )
    assert all(r.layout == "mvtec" for r in refs)
    with pytest.warns(MissingMaskWarning):
        cat = load_category(refs[0])
    assert cat.name == refs[0].name and cat.dataset == refs[0].dataset


def test_find_categories_nothing_found(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataLayoutError, match="no category"):
        find_categories(tmp_path)
    with pytest.raises(DataLayoutError, match="does not exist"):
        find_categories(tmp_path / "missing")


def test_resolve_data_root(tmp_path, monkeypatch):
    assert resolve_data_root(tmp_path) == tmp_path
    monkeypatch.setenv("LAKE_DATA_DIR", str(tmp_path))
    assert resolve_data_root(None) == tmp_path
    monkeypatch.delenv("LAKE_DATA_DIR")
    with pytest.raises(DataLayoutError, match="LAKE_DATA_DIR") as info:
        resolve_data_root(None)
    assert "data root" in str(info.value)
    with pytest.raises(DataLayoutError, match="nothere"):
        resolve_data_root(tmp_path / "nothere")


def _visa(root: Path) -> Path:
    rows = []
    for obj in ("candle", "pcb1"):
        for i in range(3):
            rel = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            _img(root / rel)
            rows.append([obj, "train", "normal", rel, ""])
        rel = f"{obj}/Data/Images/Normal/0100.JPG"
        _img(root / rel)
        rows.append([obj, "test", "normal", rel, ""])
        for i in range(2):
            rel = f"{obj}/Data/Images/Anomaly/{i:03d}.JPG"
            _img(root / rel)
            mask = f"{obj}/Data/Masks/Anomaly/{i:03d}.png"
            if i == 0:
                _mask(root / mask)
            rows.append([obj, "test", "anomaly", rel, mask])
    (root / "split_csv").mkdir(parents=True)
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    return root


def test_visa_reader(tmp_path):
    root = _visa(tmp_path / "VisA")
    with pytest.warns(MissingMaskWarning, match="candle"):
        cat = load_visa_category(root, "candle")
    assert (cat.name, cat.dataset, cat.root) == ("candle", "VisA", root / "candle")
    assert len(cat.train) == 3 and cat.defects == ("anomaly",)
    s = cat.summary()
    assert (s["test_good"], s["test_defective"], s["masks"], s["maskless"]) == (1, 2, 1, 1)
    refs = find_categories(tmp_path)
    assert refs == [CategoryRef("VisA", obj, root / obj, "visa") for obj in ("candle", "pcb1")]
    with pytest.warns(MissingMaskWarning):
        assert load_category(refs[1]).summary() == load_category(root / "pcb1").summary()
    with pytest.raises(DataLayoutError, match="candle, pcb1"):
        load_visa_category(root, "capsules")


def test_visa_missing_image_and_bad_csv(tmp_path):
    root = _visa(tmp_path / "visa")
    (root / "candle" / "Data" / "Images" / "Normal" / "0001.JPG").unlink()
    with pytest.raises(DataLayoutError, match="0001.JPG"):
        load_visa_category(root, "candle")
    (root / "split_csv" / "1cls.csv").write_text("object,split,image\ncandle,train,x.JPG\n")
    with pytest.raises(DataLayoutError, match="lacks columns"):
        load_visa_category(root, "candle")


def test_folder_layout(tmp_path):
    for i in range(3):
        _img(tmp_path / "ok" / f"n{i}.png")
    _img(tmp_path / "test_ok" / "t0.png")
    _img(tmp_path / "dents" / "d0.png")
    _img(tmp_path / "dents" / "d1.png")
    _img(tmp_path / "scuffs" / "s0.png")
    _mask(tmp_path / "masks" / "d0_mask.png")
    _mask(tmp_path / "masks" / "scuff" / "s0.png")  # nested per defect
    with pytest.warns(MissingMaskWarning, match="d1.png"):
        cat = load_folder_category(tmp_path / "ok", {"good": tmp_path / "test_ok", "dent": tmp_path / "dents",
                                                     "scuff": tmp_path / "scuffs"}, mask_dir=tmp_path / "masks")
    assert (cat.name, cat.dataset, cat.root) == ("custom", "folder", tmp_path)
    assert [s.path.name for s in cat.train] == ["n0.png", "n1.png", "n2.png"]
    masks = {s.path.name: (s.mask_path.name if s.mask_path else None) for s in cat.test if s.label}
    assert masks == {"d0.png": "d0_mask.png", "d1.png": None, "s0.png": "s0.png"}
    assert cat.defects == ("dent", "scuff")
    assert [s.label for s in cat.test if s.defect == "good"] == [0]


def test_folder_layout_errors(tmp_path):
    _img(tmp_path / "ok" / "n0.png")
    _img(tmp_path / "a" / "x.png")
    _img(tmp_path / "b" / "x.png")
    _mask(tmp_path / "masks" / "x.png")
    with pytest.raises(DataLayoutError, match="ambiguous"):
        load_folder_category(tmp_path / "ok", [tmp_path / "a", tmp_path / "b"], mask_dir=tmp_path / "masks")
    with pytest.raises(DataLayoutError, match="also in the normal folder"):
        load_folder_category(tmp_path / "ok", {"good": tmp_path / "ok"})
    with pytest.raises(DataLayoutError, match="missing_dir"):
        load_folder_category(tmp_path / "ok", {"good": tmp_path / "missing_dir"})
    (tmp_path / "none").mkdir()
    with pytest.raises(DataLayoutError, match="no images"):
        load_folder_category(tmp_path / "none", {"good": tmp_path / "a"})
    with pytest.raises(DataLayoutError, match="no test folder"):
        load_folder_category(tmp_path / "ok", {})


def test_load_sample_mask(tmp_path):
    good = Sample(tmp_path / "g.png", 0, "good")
    assert load_sample_mask(good, (20, 10)).shape == (10, 20) and not load_sample_mask(good, (20, 10)).any()
    assert load_sample_mask(Sample(tmp_path / "d.png", 1, "dent"), (16, 16)) is None
    mask_path = _mask(tmp_path / "d_mask.png", size=(16, 16))
    sample = Sample(tmp_path / "d.png", 1, "dent", mask_path)
    assert load_sample_mask(sample, (16, 16)).sum() == 16
    with pytest.raises(ImageReadError, match="d_mask.png"):
        load_sample_mask(sample, (32, 16))  # wrong size is reported when loaded


def test_sample_validation():
    with pytest.raises(LakeError):
        Sample(Path("x.png"), 2, "good")
    with pytest.raises(LakeError):
        Sample(Path("x.png"), 1, "good")


# ---------------------------------------------------------------- real data (skipped without LAKE_DATA_DIR)
def test_real_data_discovery(shared_data_root):
    found = {(r.dataset, r.name) for r in find_categories(shared_data_root)}
    assert {("bsdata", "ball_screw"), ("mtd", "magnetic_tile")} <= found


def test_real_ball_screw_counts(ball_screw_root):
    cat = load_category(ball_screw_root)
    s = cat.summary()
    assert (cat.dataset, cat.name) == ("bsdata", "ball_screw")
    assert (s["train"], s["test_good"], s["test_defective"]) == (516, 172, 167)
    assert s["per_defect"] == {"pitting": 167} and s["maskless"] == 0
    sample = next(x for x in cat.test if x.label == 1)
    with Image.open(sample.path) as im:
        assert load_sample_mask(sample, im.size).any()


def test_real_magnetic_tile_counts(magnetic_tile_root):
    cat = load_category(magnetic_tile_root)
    s = cat.summary()
    assert (s["train"], s["test_good"], s["test_defective"]) == (761, 191, 392)
    assert s["per_defect"] == {"blowhole": 115, "break": 85, "crack": 57, "fray": 32, "uneven": 103}
    assert s["maskless"] == 0
