"""The ``lake`` command line on a random model and synthetic categories."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from lake_interp.cli import main
from lake_interp.data import make_synthetic_category

FAST = ["--model", "random-dinov2-small", "--image-size", "56", "--layers", "2", "--k-neurons", "32"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synth"
    make_synthetic_category(root, name="bricks", texture="brick", n_train=4, n_test_good=2, n_test_defect=4, size=64)
    make_synthetic_category(root, name="gravel", texture="gravel", n_train=4, n_test_good=2, n_test_defect=4, size=64, seed=1)
    return root


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dinov2-s14" in out and "random" in out


def test_eval_writes_one_row_per_category_method_k_seed(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--data-root", str(data_root), "--method", "lake", "knn-all", "--shots", "1", "2",
                 "--seeds", "0", "1", "--overlays", "2", "--output", str(out), *FAST])
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 * 2 * 2 * 2 and set(df.method) == {"lake", "knn-all"}
    for column in ("category", "model", "method", "k", "seed", "image_auroc", "image_ap", "image_f1max",
                   "pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro"):
        assert column in df.columns
    assert df["model"].str.contains("random").all() and (df.text_branch == "off (image-only backbone)").all()
    assert (out / "results.parquet").is_file() and any((out / "overlays" / "bricks").glob("*.png"))
    assert "image_auroc" in capsys.readouterr().out


def test_eval_bad_input_gives_clear_error(data_root, tmp_path, capsys):
    assert main(["eval", "--data-root", str(tmp_path / "missing"), "--output", str(tmp_path / "o"), *FAST]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["eval", "--data-root", str(data_root), "--categories", "nope", "--output", str(tmp_path / "o"), *FAST]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["eval", "--data-root", str(data_root), "--shots", "99", "--output", str(tmp_path / "o"), *FAST]) == 2
    assert "k=99" in capsys.readouterr().err
    assert main(["eval", "--data-root", str(data_root), "--method", "text-zero-shot", "--output", str(tmp_path / "o"), *FAST]) == 2
    assert "image-only" in capsys.readouterr().err


def test_detect_on_user_folders(data_root, tmp_path):
    support, images = tmp_path / "normal", tmp_path / "tests"
    shutil.copytree(data_root / "bricks" / "train" / "good", support)
    shutil.copytree(data_root / "bricks" / "test" / "hole", images)
    assert main(["detect", "--support", str(support), "--images", str(images), "--output", str(tmp_path / "o"), *FAST]) == 0
    scores = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert len(scores) == len(list(images.iterdir())) and scores["score"].notna().all()
    assert len(list((tmp_path / "o" / "overlays").glob("*.png"))) == len(scores)
    assert (tmp_path / "o" / "detector" / "detector.json").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["detect", "--support", str(tmp_path / "empty"), "--images", str(images), "--output", str(tmp_path / "p"), *FAST]) == 2
