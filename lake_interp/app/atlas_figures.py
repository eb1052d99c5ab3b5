"""Figures of the Atlas page: the layer x neuron heatmap and the category x neuron view of the selected sets.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"category": ["a", "a", "b", "b"], "neuron": [0, 1, 0, 1], "rank": [0, 1, 1, 0],
    ...                      "selected": [True, False, False, True]})
    >>> figure, overlap = category_view(rows)
    >>> float(overlap.loc["a", "b"])
    0.0
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go


def layer_heatmap(rows: pd.DataFrame, metric: str, max_rank: int, log: bool) -> go.Figure:
    shown = rows.assign(value=np.where(rows["rank"] <= max_rank, rows[metric], np.nan))
    if log and metric in ("sensitivity", "abs_effect"):
        shown["value"] = np.log10(shown["value"].clip(lower=1e-12))
    grid = shown.pivot(index="layer", columns="neuron", values="value").sort_index()
    raw = rows.pivot(index="layer", columns="neuron", values=metric).reindex_like(grid)
    ranks = rows.pivot(index="layer", columns="neuron", values="rank").reindex_like(grid)
    diverging = metric == "effect_size"
    scale = (
        pc.sequential.Viridis[::-1]
        if metric == "rank"
        else (pc.diverging.RdBu[::-1] if diverging else pc.sequential.Inferno)
    )
    finite = np.isfinite(grid.values)
    bound = float(np.nanmax(np.abs(grid.values))) if diverging and finite.any() else None
    title = ("log10 " if log and metric in ("sensitivity", "abs_effect") else "") + metric.replace("_", " ")
    figure = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=grid.columns,
            y=[f"L{layer}" for layer in grid.index],
            customdata=np.stack([raw.values, ranks.values], axis=-1),
            colorscale=[[i / (len(scale) - 1), c] for i, c in enumerate(scale)],
            zmin=-bound if bound else None,
            zmax=bound,
            colorbar={"title": title},
            hovertemplate="layer %{y} · neuron %{x}<br>"
            + metric
            + " %{customdata[0]:.4g}<br>rank %{customdata[1]}<extra></extra>",
            hoverongaps=False,
        )
    )
    # heatmaps are not selectable in plotly: an invisible marker on every cell makes a click select it
    cells_y, cells_x = np.meshgrid([f"L{layer}" for layer in grid.index], grid.columns, indexing="ij")
    figure.add_trace(
        go.Scattergl(
            x=cells_x.ravel(),
            y=cells_y.ravel(),
            mode="markers",
            hoverinfo="none",
            showlegend=False,
            marker={"symbol": "square", "size": 8, "opacity": 0.0, "color": "black"},
            selected={"marker": {"opacity": 0.0}},
            unselected={"marker": {"opacity": 0.0}},
        )
    )
    figure.update_layout(
        height=120 + 28 * len(grid),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        dragmode=False,
        xaxis={"title": "neuron", "range": [-0.5, float(grid.columns.max()) + 0.5]},
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return figure


def category_view(rows: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Selected sets per category at one site and layer: neurons selected anywhere, ordered by how
    many categories select them; plus the pairwise Jaccard overlap."""
    chosen = rows[rows.selected]
    counts = chosen.groupby("neuron").size().sort_values(ascending=False, kind="stable")
    neurons = counts.index.tolist()
    cats = sorted(rows.category.unique())
    table = rows[rows.neuron.isin(neurons)]
    sel = table.pivot(index="category", columns="neuron", values="selected").reindex(index=cats, columns=neurons)
    rank = table.pivot(index="category", columns="neuron", values="rank").reindex(index=cats, columns=neurons)
    shown = rank.where(sel.astype(bool))  # rank where selected, blank elsewhere
    figure = go.Figure(
        go.Heatmap(
            z=shown.values,
            x=[str(n) for n in neurons],
            y=cats,
            customdata=rank.values,
            colorscale=[[0, "#7c2d12"], [0.5, "#ea580c"], [1, "#fed7aa"]],
            xgap=1,
            ygap=2,
            colorbar={"title": "rank"},
            hoverongaps=False,
            hovertemplate="%{y} · neuron %{x}<br>rank %{customdata}<extra></extra>",
        )
    )
    figure.update_layout(
        height=160 + 40 * len(cats),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        plot_bgcolor="#f1f1f1",
        xaxis={
            "title": f"neuron ({len(neurons)} selected in at least one category)",
            "type": "category",
            "showticklabels": len(neurons) <= 80,
        },
    )
    sets = {c: set(chosen[chosen.category == c].neuron) for c in cats}
    overlap = pd.DataFrame(
        [[len(sets[a] & sets[b]) / max(1, len(sets[a] | sets[b])) for b in cats] for a in cats],
        index=cats,
        columns=cats,
    )
    return figure, overlap
