"""The report's figures from its query results: per-campaign arithmetic and the plots, as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scoring.arms import CONTACT_COST, INCENTIVE_COST  # noqa: E402
from scoring.segments import LIFECYCLE, VALUE_BANDS  # noqa: E402

Z95 = 1.96


def campaigns(groups: pd.DataFrame, conversion_value: float) -> pd.DataFrame:
    """Per campaign and arm: reach, conversion of the arm and of the campaign's control, the incremental
    conversion with its 95% interval, cost (each send's contact, each of the arm's conversions' incentive)
    and ROI of the incremental conversions at `conversion_value` CNY each."""
    wide = groups.pivot_table(index=["campaign_id", "send_date", "incentive", "channel", "send_window"], columns="arm",
                              values=["users", "conversions"], aggfunc="sum", fill_value=0)
    out = pd.DataFrame({"reach": wide["users"]["treated"], "control": wide["users"]["control"]})
    out["conversion"] = wide["conversions"]["treated"] / out["reach"]
    out["control_conversion"] = wide["conversions"]["control"] / out["control"]
    out["incremental"] = out["conversion"] - out["control_conversion"]
    se = np.sqrt(out["conversion"] * (1 - out["conversion"]) / out["reach"]
                 + out["control_conversion"] * (1 - out["control_conversion"]) / out["control"])
    out["incremental_low"], out["incremental_high"] = out["incremental"] - Z95 * se, out["incremental"] + Z95 * se
    channel, incentive = out.index.get_level_values("channel"), out.index.get_level_values("incentive")
    out["cost"] = (out["reach"] * channel.map(CONTACT_COST).to_numpy()
                   + wide["conversions"]["treated"] * incentive.map(INCENTIVE_COST).to_numpy())
    out["incremental_conversions"] = out["incremental"] * out["reach"]
    out["roi"] = (out["incremental_conversions"] * conversion_value - out["cost"]) / out["cost"]
    return out.reset_index()


def by(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Campaigns pooled by channel or incentive."""
    g = table.groupby(key)
    out = g[["reach", "incremental_conversions", "cost"]].sum()
    out["campaigns"] = g.size()
    out["incremental"] = out["incremental_conversions"] / out["reach"]
    out["cost_per_incremental"] = out["cost"] / out["incremental_conversions"].where(out["incremental_conversions"] > 0)
    return out.reset_index()


def grid_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The 6×5 grid of user counts (lifecycle × value band), every cell present."""
    table = cells.pivot_table(index="stage", columns="band", values="users", aggfunc="sum", fill_value=0)
    return table.reindex(index=list(LIFECYCLE), columns=[f"V{v + 1}" for v in range(VALUE_BANDS)], fill_value=0)


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def activity_plot(activity: pd.DataFrame) -> bytes:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
    ax.plot(activity["day"], activity["dau"], label="DAU")
    ax.plot(activity["day"], activity["mau"], label="MAU (30 days)")
    ax.plot(activity["day"], activity["launches"], label="launches", alpha=0.6)
    ax.set(title="activity", ylabel="users / launches")
    ax.legend(fontsize=8)
    ax2.plot(activity["day"], activity["dau"] / activity["mau"], color="C3")
    ax2.set(title="DAU / MAU")
    fig.autofmt_xdate()
    return png(fig)


def retention_plot(retention: pd.DataFrame) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    retention.set_index("cohort")[["day_1", "day_7", "day_30"]].plot.bar(ax=ax)
    ax.set(title="retention by signup month", ylabel="share with a launch that day")
    return png(fig)


def grid_plot(now: pd.DataFrame, change: pd.DataFrame) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, table, title, cmap in ((axes[0], now, "users per cell", "Blues"),
                                   (axes[1], change, "change over the month", "RdBu")):
        lim = max(abs(table.to_numpy()).max(), 1)
        ax.imshow(table.to_numpy(), cmap=cmap, vmin=-lim if cmap == "RdBu" else 0, vmax=lim, aspect="auto")
        ax.set(xticks=range(table.shape[1]), xticklabels=table.columns, yticks=range(table.shape[0]),
               yticklabels=table.index, title=title)
        for (i, j), v in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{v:,.0f}", ha="center", va="center", fontsize=7)
    return png(fig)


def campaign_plot(table: pd.DataFrame) -> bytes:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    x = np.arange(len(table))
    ax.errorbar(x, table["incremental"], yerr=[table["incremental"] - table["incremental_low"],
                                               table["incremental_high"] - table["incremental"]], fmt="o", ms=3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title="incremental conversion per campaign (95% interval)", xlabel="campaign (by send date)",
           ylabel="treated − control")
    return png(fig)
