"""The benchmark's figure: four panels in one PNG (matplotlib, Agg backend)."""

from __future__ import annotations


def matplotlib_or_none():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


IMPL_STYLE = {  # label, colour
    "gen": ("generated", "tab:blue"),
    "gen_nofinite": ("generated, CHECK_FINITE False", "tab:green"),
    "gen_noval": ("generated, VALIDATE False", "tab:cyan"),
    "torch": ("PyTorch autograd", "tab:red"),
    "sympy": ("SymPy lambdify (elements)", "tab:purple"),
}


def plot(path, cases, widths, depths, title):
    """cases: dicts with label, over_hand {impl: ratio}, grad_over_loss, memory_ratio;
    widths / depths: lists of (x, median s, min s). Returns False when matplotlib is missing."""
    plt = matplotlib_or_none()
    if plt is None:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    _ratios_panel(axes[0, 0], cases)
    _bounds_panel(axes[0, 1], cases)
    _sweep_panel(axes[1, 0], widths, "width w (network w-w-w, ReLU/softmax CE, batch 64)",
                 "3. Derivation + generation time against width (fresh SymPy cache)", log_x=True)
    _sweep_panel(axes[1, 1], depths, "depth d (d tanh layers of width 16, squared error, batch 64)",
                 "4. Derivation + generation time against depth (fresh SymPy cache)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _ratios_panel(ax, cases):
    labels = [c["label"] for c in cases]
    impls = [i for i in IMPL_STYLE if any(i in c["over_hand"] for c in cases)]
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        xs = [i + (k - (len(impls) - 1) / 2) * width for i in range(len(cases))]
        ys = [c["over_hand"].get(impl, float("nan")) for c in cases]
        name, colour = IMPL_STYLE[impl]
        ax.bar(xs, ys, width, label=name, color=colour)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(1.05, color="green", lw=0.8, ls="--", label="goal: generated <= 1.05x")
    _log_y(ax)
    ax.set_xticks(range(len(cases)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("gradient time / hand-written time (median)")
    ax.set_title("1. Gradient time relative to hand-written NumPy", fontsize=10)
    ax.legend(fontsize=7)


def _bounds_panel(ax, cases):
    labels = [c["label"] for c in cases]
    xs = range(len(cases))
    ax.plot(xs, [c["grad_over_loss"] for c in cases], "o-", label="generated gradients / loss (time)")
    ax.plot(xs, [c["memory_ratio"] for c in cases], "s-", label="gradients / forward (tracemalloc peak)")
    ax.plot(xs, [c["footprint_ratio"] for c in cases], "^-",
            label="gradients / forward (arguments + peak)")
    ax.axhline(3.0, color="tab:blue", lw=0.8, ls="--", label="goal: time ratio <= 3")
    ax.axhline(2.0, color="tab:orange", lw=0.8, ls="--", label="goal: memory ratio <= 2")
    _log_y(ax, minor_labels=False)
    ax.set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=7)
    ax.set_title("2. Cheap-gradient bound and peak memory (generated code)", fontsize=10)
    ax.legend(fontsize=7)


def _log_y(ax, minor_labels=True):
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain if minor_labels else NullFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=6)


def _sweep_panel(ax, points, xlabel, title, log_x=False):
    xs = [p[0] for p in points]
    ax.plot(xs, [p[1] * 1e3 for p in points], "o-", label="median")
    ax.plot(xs, [p[2] * 1e3 for p in points], "x--", label="min")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("derive + generate, ms")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
