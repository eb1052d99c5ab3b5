"""One tidy table of per-category results, with the full evaluation protocol in every row.

A row = one (dataset, category, model, method, k, seed, ...) run. Columns (:data:`RESULT_COLUMNS`, fixed
order) are the protocol fields followed by the seven metrics of :func:`lake_interp.metrics.evaluate`.
``support_files`` holds the JSON-encoded list of the k support file names (relative to the category root).

Example:
    >>> row = make_row(dataset="bsdata", category="ball_screw", model="dinov2_vits14", method="patch_knn",
    ...                image_size=448, eval_size=256, sigma=4.0, score_rule="max", k=1, seed=0,
    ...                support_files=["train/good/a.jpg"], text_branch="off (image-only backbone)",
    ...                image_auroc=0.9, image_ap=0.8, image_f1max=0.7, pixel_auroc=0.95, pixel_ap=0.3,
    ...                pixel_f1max=0.35, pixel_aupro=0.8)
    >>> df = results_frame([row])
    >>> list(df.columns) == list(RESULT_COLUMNS)
    True
    >>> print(to_markdown(df[["category", "k", "image_auroc"]]))
    | category | k | image_auroc |
    |---|---:|---:|
    | ball_screw | 1 | 0.900 |
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lake_interp.errors import ConfigError
from lake_interp.io import atomic_path
from lake_interp.metrics import METRIC_NAMES

METRIC_COLUMNS: tuple[str, ...] = METRIC_NAMES
# column -> (dtype, required). Optional columns default to None / NaN.
_PROTOCOL: dict[str, tuple[str, bool]] = {
    "dataset": ("str", True),
    "category": ("str", True),
    "model": ("str", True),
    "method": ("str", True),
    "image_size": ("int", True),
    "eval_size": ("int", True),
    "sigma": ("float", True),
    "score_rule": ("str", True),
    "k": ("int", True),
    "seed": ("int", True),
    "support_files": ("json", True),
    "layer": ("optstr", False),  # block index, or "5+8" for several
    "site": ("optstr", False),
    "n_neurons": ("Int64", False),
    "text_branch": ("str", True),
    "fit_seconds": ("float", False),
    "predict_ms_per_image": ("float", False),
}
PROTOCOL_COLUMNS: tuple[str, ...] = tuple(_PROTOCOL)
RESULT_COLUMNS: tuple[str, ...] = PROTOCOL_COLUMNS + METRIC_COLUMNS
_KINDS = {**{c: kind for c, (kind, _) in _PROTOCOL.items()}, **dict.fromkeys(METRIC_COLUMNS, "metric")}

__all__ = [
    "METRIC_COLUMNS",
    "PROTOCOL_COLUMNS",
    "RESULT_COLUMNS",
    "format_mean_std",
    "make_row",
    "read_results",
    "results_frame",
    "summary_table",
    "to_markdown",
    "write_results",
]


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _check_value(column: str, value):
    kind = _KINDS[column]
    if kind in ("str", "optstr"):
        if _is_missing(value):
            if kind == "optstr":
                return None
            raise ConfigError(f"result column {column!r} needs a text value, got {value!r}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"result column {column!r} needs a non-empty string, got {value!r}")
        return value
    if kind in ("int", "Int64"):
        if _is_missing(value) and kind == "Int64":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"result column {column!r} needs an integer, got {value!r}")
        return int(value)
    if kind in ("float", "metric"):
        if value is None:
            if column in _PROTOCOL and _PROTOCOL[column][1]:
                raise ConfigError(f"result column {column!r} needs a number, got None")
            return float("nan")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"result column {column!r} needs a number, got {value!r}")
        value = float(value)
        if kind == "metric" and not (math.isnan(value) or 0.0 <= value <= 1.0):
            raise ConfigError(f"metric {column!r} must lie in [0, 1] or be NaN, got {value}")
        return value
    # json: the support file names
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"support_files must be a list of names or its JSON text, got {value!r}") from exc
    else:
        decoded = value
    if not isinstance(decoded, (list, tuple)) or not all(isinstance(v, str) for v in decoded):
        raise ConfigError(f"support_files must be a list of file names, got {value!r}")
    return json.dumps(list(decoded))


def make_row(**fields) -> dict:
    """Validate one result row and return it as a dict in :data:`RESULT_COLUMNS` order.

    Required: every protocol column except ``layer``, ``site``, ``n_neurons``, ``fit_seconds`` and
    ``predict_ms_per_image`` (those default to missing), and all seven metric columns (NaN allowed,
    e.g. pixel metrics of a category without masks). ``support_files`` may be a list (it is JSON-encoded).

    Raises:
        ConfigError: unknown or missing column, or a value of the wrong type / range.
    """
    unknown = sorted(set(fields) - set(RESULT_COLUMNS))
    if unknown:
        raise ConfigError(f"unknown result column(s) {unknown}; allowed: {', '.join(RESULT_COLUMNS)}")
    required = [c for c, (_, req) in _PROTOCOL.items() if req] + list(METRIC_COLUMNS)
    missing = [c for c in required if c not in fields]
    if missing:
        raise ConfigError(f"result row lacks column(s) {missing}")
    return {c: _check_value(c, fields.get(c)) for c in RESULT_COLUMNS}


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(df)))
    for column in RESULT_COLUMNS:
        kind = _KINDS[column]
        values = df[column].reset_index(drop=True)
        if kind == "int":
            out[column] = values.astype("int64")
        elif kind == "Int64":
            out[column] = pd.array([None if _is_missing(v) else int(v) for v in values], dtype="Int64")
        elif kind in ("float", "metric"):
            out[column] = values.astype("float64")
        else:
            out[column] = pd.Series([None if _is_missing(v) else str(v) for v in values], dtype="object")
    return out


def results_frame(rows: Iterable[Mapping]) -> pd.DataFrame:
    """A DataFrame of validated rows with columns :data:`RESULT_COLUMNS` in that order.

    Rows may be dicts from :func:`make_row` or raw field dicts (they are validated).
    """
    checked = [make_row(**{k: v for k, v in row.items()}) for row in rows]
    if not checked:
        return _typed(pd.DataFrame({c: pd.Series([], dtype="object") for c in RESULT_COLUMNS}))
    return _typed(pd.DataFrame(checked, columns=list(RESULT_COLUMNS)))


def _check_columns(df: pd.DataFrame, source: str) -> None:
    missing = [c for c in RESULT_COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in RESULT_COLUMNS]
    if missing or extra:
        raise ConfigError(f"{source} does not follow the results schema: missing {missing}, unexpected {extra}")


def write_results(df: pd.DataFrame, out_dir: str | os.PathLike, stem: str = "results") -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.csv`` and ``<out_dir>/<stem>.parquet`` atomically; return both paths."""
    _check_columns(df, "the results table")
    df = _typed(df[list(RESULT_COLUMNS)])
    out_dir = Path(out_dir)
    csv_path, parquet_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.parquet"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(parquet_path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")
    return csv_path, parquet_path


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results file written by :func:`write_results` (``.csv`` or ``.parquet``), typed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"results file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path, dtype={c: "object" for c, k in _KINDS.items() if k in ("str", "optstr", "json")},
                         keep_default_na=False, na_values={c: [""] for c in RESULT_COLUMNS})
    elif suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise ConfigError(f"results file {path} must end in .csv or .parquet")
    _check_columns(df, str(path))
    return _typed(df[list(RESULT_COLUMNS)])


def summary_table(
    df: pd.DataFrame,
    by: Sequence[str] = ("dataset", "method", "k"),
    metrics: Sequence[str] = METRIC_COLUMNS,
) -> pd.DataFrame:
    """Mean and std over seeds of the unweighted category mean, per group ``by``.

    For each group and seed the metrics are averaged over categories (NaN propagates: a category
    without masks makes the group's pixel mean NaN); the table reports, per metric, the mean over
    seeds (column ``<metric>``) and the sample std over seeds (``<metric>_std``, NaN for one seed),
    plus ``n_categories`` and ``n_seeds``.

    Raises:
        ConfigError: rows are not unique per (by, category, seed), i.e. the table mixes configurations
            that ``by`` does not separate (add that column, e.g. ``"layer"``, to ``by``).
    """
    by = list(by)
    needed = by + ["category", "seed", *metrics]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise ConfigError(f"summary_table: columns {absent} not in the results table")
    if df.empty:
        return pd.DataFrame(columns=[*by, "n_categories", "n_seeds", *[m + s for m in metrics for s in ("", "_std")]])
    dup = df.duplicated(subset=by + ["category", "seed"], keep=False)
    if dup.any():
        example = df.loc[dup, by + ["category", "seed"]].iloc[0].to_dict()
        raise ConfigError(
            f"{int(dup.sum())} rows share (group, category, seed), e.g. {example}: add the column that "
            "distinguishes them (e.g. 'layer', 'model', 'image_size') to `by`"
        )
    per_seed = df.groupby(by + ["seed"], dropna=False, sort=True).agg(
        n_categories=("category", "nunique"), **{m: (m, lambda s: s.mean(skipna=False)) for m in metrics}
    ).reset_index()
    grouped = per_seed.groupby(by, dropna=False, sort=True)
    out = grouped.agg(n_categories=("n_categories", "max"), n_seeds=("seed", "nunique")).reset_index()
    means = grouped[list(metrics)].agg(lambda s: s.mean(skipna=False)).reset_index(drop=True)
    stds = grouped[list(metrics)].agg(lambda s: s.std(ddof=1, skipna=False)).reset_index(drop=True)
    for m in metrics:
        out[m] = means[m].to_numpy()
        out[m + "_std"] = stds[m].to_numpy()
    return out


def format_mean_std(summary: pd.DataFrame, floatfmt: str = ".3f") -> pd.DataFrame:
    """Replace each ``<metric>`` / ``<metric>_std`` pair of a :func:`summary_table` by "mean ± std" text."""
    out = summary.copy()
    for column in [c for c in summary.columns if f"{c}_std" in summary.columns]:
        out[column] = [
            "n/a" if _is_missing(m) else (f"{m:{floatfmt}}" if _is_missing(s) else f"{m:{floatfmt}} ± {s:{floatfmt}}")
            for m, s in zip(summary[column], summary[f"{column}_std"])
        ]
        out = out.drop(columns=f"{column}_std")
    return out


def _cell(value, floatfmt: str) -> str:
    if _is_missing(value):
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{value:{floatfmt}}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (index dropped; numbers right-aligned; NaN -> n/a)."""
    columns = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(c.replace("|", "\\|") for c in columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)
