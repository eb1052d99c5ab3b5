"""Tests of the results table: schema validation, atomic CSV/Parquet round trip, summaries, Markdown."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from lake_interp.errors import ConfigError
from lake_interp.results import (
    METRIC_COLUMNS,
    RESULT_COLUMNS,
    format_mean_std,
    make_row,
    read_results,
    results_frame,
    summary_table,
    to_markdown,
    write_results,
)


def _fields(**overrides) -> dict:
    base = dict(
        dataset="bsdata", category="ball_screw", model="dinov2_vits14", method="patch_knn", image_size=448,
        eval_size=256, sigma=4.0, score_rule="max", k=1, seed=0, support_files=["train/good/a.jpg"],
        text_branch="off (image-only backbone)", image_auroc=0.9, image_ap=0.8, image_f1max=0.7,
        pixel_auroc=0.95, pixel_ap=0.3, pixel_f1max=0.35, pixel_aupro=0.8,
    )
    base.update(overrides)
    return base


def test_make_row_fills_optional_and_encodes_support():
    row = make_row(**_fields(support_files=["train/good/a.jpg", "train/good/b.jpg"]))
    assert list(row) == list(RESULT_COLUMNS)
    assert json.loads(row["support_files"]) == ["train/good/a.jpg", "train/good/b.jpg"]
    assert row["layer"] is None and row["site"] is None and math.isnan(row["fit_seconds"])
    assert make_row(**_fields(support_files='["x.png"]'))["support_files"] == '["x.png"]'
    row = make_row(**_fields(layer="9", site="mlp_out", n_neurons=64, pixel_aupro=float("nan")))
    assert row["layer"] == "9" and math.isnan(row["pixel_aupro"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "red"}, "unknown result column"),
        ({"image_auroc": 1.5}, r"\[0, 1\]"),
        ({"k": 1.0}, "integer"),
        ({"k": True}, "integer"),
        ({"sigma": "four"}, "number"),
        ({"dataset": ""}, "non-empty"),
        ({"support_files": "not json"}, "support_files"),
        ({"support_files": [1, 2]}, "support_files"),
    ],
)
def test_make_row_rejects_bad_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_row(**_fields(**overrides))


def test_make_row_requires_protocol_and_metrics():
    fields = _fields()
    del fields["seed"], fields["pixel_ap"]
    with pytest.raises(ConfigError, match="seed") as info:
        make_row(**fields)
    assert "pixel_ap" in str(info.value)


def _frame() -> pd.DataFrame:
    rows = []
    for seed in (0, 1, 2):
        for category, base in (("a", 0.8), ("b", 0.6)):
            rows.append(_fields(category=category, seed=seed, image_auroc=base + 0.01 * seed,
                                pixel_aupro=float("nan") if category == "b" else 0.5,
                                site="resid" if seed else None, layer=str(seed) if seed else None,
                                fit_seconds=1.5))
    rows.append(_fields(category="a", seed=0, k=2, image_auroc=0.99))
    return results_frame(rows)


def test_results_frame_columns_and_types():
    df = _frame()
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert df["k"].dtype == np.int64 and df["layer"].dtype == object
    assert df["image_auroc"].dtype == np.float64
    assert results_frame([]).columns.tolist() == list(RESULT_COLUMNS)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_read_round_trip(tmp_path, suffix):
    df = _frame()
    csv_path, parquet_path = write_results(df, tmp_path / "out", stem="run1")
    assert csv_path.name == "run1.csv" and parquet_path.name == "run1.parquet"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run1.csv", "run1.parquet"]  # no temp files
    back = read_results(tmp_path / "out" / f"run1{suffix}")
    pd.testing.assert_frame_equal(back, df)


def test_write_rejects_wrong_schema_and_read_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing"):
        write_results(_frame().drop(columns=["seed"]), tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="not found"):
        read_results(tmp_path / "nope.csv")
    (tmp_path / "r.txt").write_text("x")
    with pytest.raises(ConfigError, match=".csv or .parquet"):
        read_results(tmp_path / "r.txt")


def test_summary_table_mean_std_over_seeds_of_category_mean():
    df = _frame()
    summary = summary_table(df)
    row = summary[summary["k"] == 1].iloc[0]
    per_seed = [(0.8 + 0.01 * s + 0.6 + 0.01 * s) / 2 for s in range(3)]
    assert row["image_auroc"] == pytest.approx(np.mean(per_seed))
    assert row["image_auroc_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert (row["n_categories"], row["n_seeds"]) == (2, 3)
    assert math.isnan(row["pixel_aupro"])  # category b has no pixel AUPRO: NaN propagates
    single = summary[summary["k"] == 2].iloc[0]
    assert single["image_auroc"] == pytest.approx(0.99) and math.isnan(single["image_auroc_std"])
    text = format_mean_std(summary)
    expected = f"{np.mean(per_seed):.3f} ± {np.std(per_seed, ddof=1):.3f}"
    assert text.loc[summary["k"] == 1, "image_auroc"].iloc[0] == expected
    assert "image_auroc_std" not in text.columns


def test_summary_table_refuses_mixed_configurations():
    df = results_frame([_fields(layer="3"), _fields(layer="4+7")])
    with pytest.raises(ConfigError, match="layer"):
        summary_table(df)
    assert len(summary_table(df, by=("dataset", "method", "k", "layer"))) == 2


def test_to_markdown():
    df = pd.DataFrame({"name": ["a|b", "c"], "k": [1, 2], "auroc": [0.91234, float("nan")]})
    assert to_markdown(df, floatfmt=".2f") == (
        "| name | k | auroc |\n"
        "|---|---:|---:|\n"
        "| a\\|b | 1 | 0.91 |\n"
        "| c | 2 | n/a |"
    )
    assert to_markdown(_frame()[list(METRIC_COLUMNS)]).count("\n") == len(_frame()) + 1
