"""Plotly figures for the app's pages. Inputs are already downsampled frames; nothing here reads files.

SVG traces (`go.Scatter`), not WebGL: the frames are downsampled to a few thousand points, and
SVG renders in every browser, including a headless one without a GPU.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from app.analysis import SIGNAL_HORIZON_S, pareto_front, to_time

BUY, SELL = "#1a9850", "#d73027"


def _layout(fig: go.Figure, title: str, y: str, height: int = 340) -> go.Figure:
    fig.update_layout(title=title, yaxis_title=y, height=height, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.22), hovermode="x unified")
    return fig


def pnl_figure(equity: pd.DataFrame, quote: str) -> go.Figure:
    """Equity and its decomposition: total = spread capture + inventory - fees - action costs."""
    x = to_time(equity["ts"])
    fig = go.Figure()
    for column, label in (("equity", "total PnL"), ("pnl_spread_capture", "spread capture"),
                          ("pnl_inventory", "inventory"), ("fees_paid", "fees paid (subtracted)"),
                          ("costs_paid", "action costs (subtracted)")):
        if column in equity:  # runs written before action costs existed have no costs_paid
            fig.add_trace(go.Scatter(x=x, y=equity[column], name=label, mode="lines"))
    return _layout(fig, f"PnL and its decomposition ({quote}, marked at mid)", quote)


def inventory_figure(equity: pd.DataFrame, base: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=to_time(equity["ts"]), y=equity["inventory"], name="inventory", mode="lines",
                                 line=dict(color="#4575b4")))
    return _layout(fig, f"Inventory ({base})", base, height=260)


def price_figure(mid: pd.DataFrame, quotes: pd.DataFrame, fills: pd.DataFrame, quote: str) -> go.Figure:
    """Market mid, our best bid and ask (as steps: they hold until changed) and our fills."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=to_time(mid["ts"]), y=mid["mid"], name="market mid", mode="lines",
                               line=dict(color="#777777", width=1)))
    for column, label, color in (("bid", "our best bid", BUY), ("ask", "our best ask", SELL)):
        fig.add_trace(go.Scatter(x=to_time(quotes["ts"]), y=quotes[column], name=label, mode="lines",
                                   line=dict(color=color, width=1, shape="hv"), opacity=0.7))
    for side, label, color, symbol in ((1, "buy fills", BUY, "triangle-up"), (-1, "sell fills", SELL, "triangle-down")):
        ours = fills[fills["side"] == side]
        fig.add_trace(go.Scatter(x=to_time(ours["ts"]), y=ours["price"], name=label, mode="markers",
                                   marker=dict(color=color, symbol=symbol, size=9, line=dict(width=1, color="black")),
                                   customdata=ours["qty"], hovertemplate="%{y} x %{customdata}"))
    return _layout(fig, "Price: market mid, our quotes and fills", quote, height=420)


def markout_figure(curve: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for column, color in (("all", "#333333"), ("buys", BUY), ("sells", SELL)):
        fig.add_trace(go.Scatter(x=curve["seconds"], y=curve[column], name=column, mode="lines+markers",
                                 line=dict(color=color)))
    fig.add_hline(y=0, line_dash="dot", line_color="#999999")
    fig.update_xaxes(type="log", title="horizon after the fill (s)", tickvals=curve["seconds"],
                     ticktext=curve["horizon"])
    return _layout(fig, "Markout, qty-weighted (+ = good for us)", "bps", height=300)


def signal_figure(binned: pd.DataFrame, horizon_s: float = SIGNAL_HORIZON_S) -> go.Figure:
    fig = go.Figure(go.Scatter(x=binned["expected_bps"], y=binned["realised_bps"], mode="lines+markers",
                               name="realised (mean per decile)", customdata=binned["blocks"],
                               hovertemplate="expected %{x:.3f} bps, realised %{y:.3f} bps, %{customdata} blocks"))
    low, high = binned["expected_bps"].min(), binned["expected_bps"].max()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="realised = expected",
                             line=dict(dash="dot", color="#999999")))
    fig.update_xaxes(title="signal's expected move (bps)")
    return _layout(fig, f"Signal vs realised mid move over the next {horizon_s:g} s", "realised (bps)", 320)


def compare_figure(equities: dict[str, pd.DataFrame], quote: str) -> go.Figure:
    """Total PnL of several runs against time since each run's start, so different windows line up."""
    fig = go.Figure()
    for name, equity in equities.items():
        minutes = (equity["ts"] - equity["ts"].iloc[0]) / 60e9
        fig.add_trace(go.Scatter(x=minutes, y=equity["equity"], name=name, mode="lines"))
    fig.update_xaxes(title="minutes since the run's start")
    return _layout(fig, "Total PnL", quote, height=320)


def heatmap_figure(pivot: pd.DataFrame, metric: str, x: str, y: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=pivot.to_numpy(), x=[str(c) for c in pivot.columns], y=[str(i) for i in pivot.index],
                               colorscale="RdYlGn", colorbar=dict(title=metric), texttemplate="%{z:.4g}"))
    fig.update_xaxes(title=x, type="category")
    fig.update_yaxes(type="category")
    return _layout(fig, f"{metric} over {x} x {y}", y, height=380)


def pareto_figure(results: pd.DataFrame, labels: pd.Series, quote: str) -> go.Figure:
    """PnL against max drawdown; the non-dominated points (more PnL for no more drawdown) joined up."""
    front = pareto_front(results)
    fig = go.Figure(go.Scatter(x=results["max_drawdown"], y=results["pnl_total"], mode="markers", name="points",
                               text=labels, customdata=results["point_id"], marker=dict(size=9, color="#4575b4"),
                               hovertemplate="%{text}<br>drawdown %{x:.4g}, PnL %{y:.4g}<extra>%{customdata}</extra>"))
    edge = results[front].sort_values("max_drawdown")
    fig.add_trace(go.Scatter(x=edge["max_drawdown"], y=edge["pnl_total"], mode="lines+markers", name="Pareto front",
                             text=labels[edge.index], customdata=edge["point_id"], line=dict(color=SELL),
                             marker=dict(size=11, symbol="diamond")))
    fig.update_xaxes(title=f"max drawdown ({quote})")
    fig.update_layout(hovermode="closest")
    return _layout(fig, "PnL vs max drawdown", f"total PnL ({quote})", height=380)


def live_figure(history: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for column in ("pnl", "inventory"):
        if column in history:
            fig.add_trace(go.Scatter(x=history["time"], y=history[column], name=column, mode="lines+markers",
                                     yaxis="y2" if column == "inventory" else "y"))
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", title="inventory"))
    return _layout(fig, "Since this page opened", "PnL", height=280)
