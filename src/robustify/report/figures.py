"""The paper's figures with seaborn, drawn from the tables (never from models).

figure1_pareto        Figure 1  c accuracy vs training seconds per image (log x), Pareto front marked
figure2_datasets      Figure 2  accuracy by dataset, linear probe vs original (and ours)
figure3_severity      Figure 3  accuracy vs corruption severity per model
figure5_grid          Figure 5  teacher × student heatmaps of ours' gain over APT (c and r)
ablations_fcorrect    Tables 6/7  shift-mean accuracy per ablation + Fcorrect per selection rule

Each writes <name>.<fmt> for every format asked; a figure whose table is empty is drawn as a panel
that says which runs are missing (so the report always has every file and never a blank image).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..io import atomic_path  # noqa: E402

FIGURE_NAMES = ("figure1_pareto", "figure2_datasets", "figure3_severity", "figure5_grid", "ablations_fcorrect")
DATASET_LABELS = {"clean": "clean", "c": "C", "r": "R", "sketch": "Sketch", "objectnet": "ObjectNet",
                  "objectnet_c": "ObjectNet-C"}


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    order = np.lexsort((-acc, cost))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return np.array(front, dtype=int)


def _empty(ax, title: str, what: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"no data yet:\n{what}", ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend_outside(ax, title=None) -> None:
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), frameon=False, title=title)


def _save(fig, out_dir: Path, name: str, formats, dpi: int) -> list[Path]:
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _annotate_apart(ax, xs, ys, labels, fontsize: int = 8, line_pt: float = 9.0, width_pt: float = 70.0) -> None:
    """Label each point to its right, moving a label down a line while it would overlap one placed
    before it (ours, APT and their teachers sit within a fraction of a point of each other)."""
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling: data → display is final from here
    px = ax.figure.dpi / 72.0
    placed: list[tuple[float, float]] = []
    for x, y, text in sorted(zip(xs, ys, labels), key=lambda t: -t[1]):
        x0, y0 = ax.transData.transform((x, y))
        dy = 4.0
        while any(abs(x0 - qx) < width_pt * px and abs(y0 + dy * px - qy) < line_pt * px for qx, qy in placed):
            dy -= line_pt
        placed.append((x0, y0 + dy * px))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, dy), fontsize=fontsize)


def figure1_pareto(main: pd.DataFrame):
    """c accuracy (%) vs training ms per image (log x), one panel per student; Pareto front marked."""
    d = main.dropna(subset=["c", "train_s_per_image"]) if not main.empty else main
    d = d[d["train_s_per_image"] > 0] if not d.empty else d
    title = "Figure 1: corruption accuracy vs training cost"
    if d.empty:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        _empty(ax, title, "methods with c accuracy and training s/image")
        return fig
    d = d.copy()
    d["ms_per_image"] = d["train_s_per_image"] * 1000
    d["label"] = [m + (f" ← {t.split('_')[0]}" if m == "ours" and isinstance(t, str) and t else "")
                  for m, t in zip(d["method"], d["teacher"])]
    methods = list(dict.fromkeys(sorted(d["method"], key=lambda m: (m.startswith("wise"), m))))
    palette = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    students = sorted(d["student"].unique())
    fig, axes = plt.subplots(1, len(students), figsize=(5.2 * len(students) + 1.5, 4.3), squeeze=False)
    for ax, student in zip(axes[0], students):
        g = d[d["student"] == student]
        if "c_std" in g and g["c_std"].notna().any():
            ax.errorbar(g["ms_per_image"], g["c"], yerr=g["c_std"].fillna(0), fmt="none", ecolor="0.6", lw=1, zorder=1)
        sns.scatterplot(data=g, x="ms_per_image", y="c", hue="method", palette=palette, s=90, ax=ax, zorder=3,
                        legend=False)
        f = g.iloc[pareto_front(g["ms_per_image"].to_numpy(), g["c"].to_numpy())]
        ax.plot(f["ms_per_image"], f["c"], "--", color="0.3", lw=1.2, zorder=2, drawstyle="steps-post")
        ax.scatter(f["ms_per_image"], f["c"], s=260, facecolors="none", edgecolors="k", linewidths=1.5, zorder=4)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        lo, hi = g["ms_per_image"].min(), g["ms_per_image"].max()
        ax.set_xlim(lo / 1.6, hi * 2.2)  # room for the labels
        _annotate_apart(ax, g["ms_per_image"], g["c"], g["label"])
        ax.set_xlabel("training time per image (ms, log scale)")
        ax.set_ylabel("C accuracy (%)")
        ax.set_title(student)
        ax.grid(True, which="both", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=8, color=c, label=m) for m, c in palette.items()]
    handles.append(Line2D([], [], ls="--", marker="o", ms=13, mfc="none", mec="k", color="0.3", label="Pareto front"))
    axes[0][-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle(title + " (original: no training, not shown)")
    fig.tight_layout()
    return fig


def _students_main_scheme(robust: pd.DataFrame, main_scheme) -> pd.DataFrame:
    """Student models only (no teachers); ours/apt of the main teacher scheme (every scheme when it did not run)."""
    d = robust[robust["student"].fillna("") != ""]
    distilled = d["setting"].isin(["ours", "apt"])
    if main_scheme and (distilled & (d["scheme"] == main_scheme)).any():
        d = d[~distilled | (d["scheme"] == main_scheme)]
    return d


def figure2_datasets(robust: pd.DataFrame, main_scheme=None):
    """Accuracy by dataset (all severities pooled), original vs linear probe (and ours), one panel per student."""
    title = "Figure 2: accuracy by dataset, original vs linear probe (ours: mean over teachers)"
    d = robust[(robust["severity"] == "all") & robust["setting"].isin(["original", "linear_probe", "ours"])] if not robust.empty else robust
    d = _students_main_scheme(d, main_scheme) if not d.empty else d
    if d.empty:
        fig, ax = plt.subplots(figsize=(8.5, 4.5))
        _empty(ax, title, "evaluate records of original / linear_probe models")
        return fig
    d = d.copy()
    d["dataset"] = d["dataset"].map(DATASET_LABELS)
    order = [v for v in DATASET_LABELS.values() if v in set(d["dataset"])]
    hue_order = [h for h in ["original", "linear_probe", "ours"] if h in set(d["setting"])]
    g = sns.catplot(data=d, x="dataset", y="accuracy", hue="setting", col="student", kind="bar", order=order,
                    hue_order=hue_order, errorbar=None, height=3.8, aspect=1.4, legend_out=True)
    g.set_axis_labels("test set", "accuracy (%)")
    g.set_titles("student: {col_name}")
    for ax in g.axes.flat:
        ax.set_ylim(0, 100)
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelrotation=25)
    g.legend.set_title("model")
    g.figure.suptitle(title, y=1.04)
    return g.figure


def figure3_severity(robust: pd.DataFrame, main_scheme=None):
    """Accuracy vs corruption severity per method; rows = students, columns = corrupted suites (C, ObjectNet-C)."""
    title = "Figure 3: accuracy vs corruption severity (ours/apt: mean over teachers)"
    d = robust[robust["severity"] != "all"] if not robust.empty else robust
    d = _students_main_scheme(d, main_scheme) if not d.empty else d
    if d.empty:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        _empty(ax, title, "per-severity accuracy in evaluate records")
        return fig
    d = d.copy()
    d["severity"] = d["severity"].astype(int)
    d["dataset"] = d["dataset"].map(DATASET_LABELS)
    from .tables import _method_rank

    hue_order = sorted(d["setting"].unique(), key=lambda m: (_method_rank(m), m))
    g = sns.relplot(data=d, x="severity", y="accuracy", hue="setting", hue_order=hue_order, style="setting",
                    style_order=hue_order, col="dataset", row="student", kind="line", markers=True, dashes=False,
                    errorbar=None, height=3.2, aspect=1.3, facet_kws={"sharey": False})
    g.set_axis_labels("corruption severity", "accuracy (%)")
    g.set_titles("{row_name} — {col_name}")
    for ax in g.axes.flat:
        ax.set_xticks(sorted(d["severity"].unique()))
        ax.grid(True, alpha=0.3)
    g.legend.set_title("method")
    g.figure.suptitle(title, y=1.03)
    return g.figure


def figure5_grid(grid: pd.DataFrame):
    """Teacher × student heatmaps of ours' gain over APT (pt) on C and R; teacher 'none' = APT itself."""
    title = "Figure 5: gain over APT (w/o KD), percentage points"
    d = grid.dropna(subset=["gain_c_over_apt"]) if not grid.empty else grid
    if d.empty:
        fig, ax = plt.subplots(figsize=(7, 4))
        _empty(ax, title, "ours and apt (no_kd) runs")
        return fig
    panels = [("gain_c_over_apt", "C"), ("gain_r_over_apt", "R")]
    panels = [p for p in panels if d[p[0]].notna().any()]
    d = d.copy()
    d["student_label"] = d["student"] + (" / " + d["scheme"] if d["scheme"].nunique() > 1 else "")
    teachers = ["none"] + sorted(t for t in d["teacher"].unique() if t != "none")
    n_rows = d["student_label"].nunique()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 + 2.6 * len(panels) * (1 + 0.55 * len(teachers)) / 2,
                                                      1.8 + 0.7 * n_rows), squeeze=False, sharey=True)
    lim = max(1e-9, float(np.nanmax(np.abs(d[[p[0] for p in panels]].to_numpy()))))
    for k, (ax, (col, name)) in enumerate(zip(axes[0], panels)):
        pivot = d.pivot_table(index="student_label", columns="teacher", values=col, aggfunc="mean").reindex(columns=teachers)
        sns.heatmap(pivot, annot=True, fmt="+.1f", cmap="RdBu", center=0, vmin=-lim, vmax=lim, ax=ax,
                    cbar=k == len(panels) - 1, cbar_kws={"label": "gain over APT (pt)"}, linewidths=0.5,
                    annot_kws={"fontsize": 10})
        ax.set_title(f"{name} accuracy")
        ax.set_xlabel("teacher (none = APT)")
        ax.set_ylabel("student" + (" / teacher scheme" if d["scheme"].nunique() > 1 else "") if k == 0 else "")
        ax.tick_params(axis="x", labelrotation=30)
        ax.tick_params(axis="y", labelrotation=0)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablations(ablation: pd.DataFrame, fcorrect: pd.DataFrame, main_scheme=None):
    """Left: shift-mean accuracy per ablation row (Table 6). Right: Fcorrect per selection rule (Table 7).

    Both for the main teacher scheme (every scheme when it did not run); Fcorrect averaged over configurations.
    """
    def main_only(t: pd.DataFrame) -> pd.DataFrame:
        return t[t["scheme"] == main_scheme] if main_scheme and not t.empty and (t["scheme"] == main_scheme).any() else t

    ablation, fcorrect = main_only(ablation), main_only(fcorrect)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.4, 1]})
    t1 = "Ablations: mean accuracy over shifts"
    a = ablation.dropna(subset=["shift_mean"]) if not ablation.empty else ablation
    if a.empty:
        _empty(ax1, t1, "ours / apt evaluate records")
    else:
        a = a.copy()
        a["config"] = a["student"] + " ← " + a["teacher"]
        order = [r for r in ["ours", "no_kld", "no_uncertainty", "max_logit", "no_kd", "clean_head", "robust_head",
                             "combined_head", "oracle"] if r in set(a["ablation"])]
        sns.barplot(data=a, y="ablation", x="shift_mean", hue="config", order=order, ax=ax1, errorbar=None, orient="h")
        if "shift_mean_std" in a and a["shift_mean_std"].notna().any() and a["config"].nunique() == 1:
            ax1.errorbar(a.set_index("ablation").loc[order, "shift_mean"], range(len(order)),
                         xerr=a.set_index("ablation").loc[order, "shift_mean_std"].fillna(0), fmt="none", ecolor="k", lw=1)
        lo = float(a["shift_mean"].min())
        ax1.set_xlim(max(0.0, lo - 5), float(a["shift_mean"].max()) + 2)
        ax1.set_xlabel("mean accuracy over shifted test sets (%)")
        ax1.set_ylabel("ablation (Table 6 row)")
        ax1.set_title(t1)
        ax1.grid(True, axis="x", alpha=0.3)
        ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.24), frameon=False, title="student ← teacher")
    t2 = "Fcorrect: share routed to the right head"
    f = fcorrect.dropna(subset=["fcorrect_clean_mean", "fcorrect_shifted_mean"], how="all") if not fcorrect.empty else fcorrect
    if f.empty:
        _empty(ax2, t2, "multi-head evaluate records")
    else:
        long = f.melt(id_vars=["method", "rule"], value_vars=["fcorrect_clean_mean", "fcorrect_shifted_mean"],
                      var_name="data", value_name="fcorrect")
        long["data"] = long["data"].map({"fcorrect_clean_mean": "clean → clean head", "fcorrect_shifted_mean": "shifted → robust head"})
        long["rule"] = long["method"].map({"ours": "", "apt": " (no KD)"}).radd(long["rule"])
        sns.barplot(data=long, x="fcorrect", y="rule", hue="data", ax=ax2, errorbar=None, orient="h")  # mean over configs
        ax2.axvline(0.5, color="0.3", ls="--", lw=1)
        ax2.text(0.505, 0.01, "chance", transform=ax2.get_xaxis_transform(), va="bottom", fontsize=8, color="0.3")
        ax2.set_xlim(0, 1)
        ax2.set_xlabel("Fcorrect (fraction of test images)")
        ax2.set_ylabel("selection rule")
        ax2.set_title(t2)
        ax2.grid(True, axis="x", alpha=0.3)
        ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.24), frameon=False, ncol=2, title="test data → right head")
    fig.tight_layout()
    return fig


def write_figures(tables: dict[str, pd.DataFrame], out_dir: str | Path, formats=("png", "pdf"), dpi: int = 150,
                  main_scheme=None) -> list[Path]:
    """Every figure from the built tables (keys as in tables.TABLE_NAMES); returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    figs = {
        "figure1_pareto": lambda: figure1_pareto(tables["main.csv"]),
        "figure2_datasets": lambda: figure2_datasets(tables["robustness_analysis.csv"], main_scheme),
        "figure3_severity": lambda: figure3_severity(tables["robustness_analysis.csv"], main_scheme),
        "figure5_grid": lambda: figure5_grid(tables["teacher_student_grid.csv"]),
        "ablations_fcorrect": lambda: ablations(tables["ablations.csv"], tables["fcorrect.csv"], main_scheme),
    }
    written: list[Path] = []
    for name, draw in figs.items():
        written += _save(draw(), out_dir, name, formats, dpi)
    return written
