"""The diagnostics' outputs: diagnose.json (strict JSON), diagnose.png (gradient norm vs depth, highway gates)
and one summary line per model and snapshot, written atomically into the output dir.

Non-finite numbers are written as strings ('inf', 'nan'): a ratio of inf is a finding, not a missing value.

Example:
    >>> from reszoo.analysis.diagnose import diagnose
    >>> report = diagnose(["resnet20"], steps=0, batch_size=8, width=4, image_size=(8, 8))
    >>> print(next(summary_lines(report)))  # one line per model and snapshot
        resnet20    init step     0: loss ..., grad-norm first/last block ... -> ...
"""
import os

from export.core.files import atomic_write, write_json

DIAGNOSE_FILES = ("diagnose.json", "diagnose.png")
SNAPSHOT_TITLES = {"init": "at initialisation", "trained": "after {steps} SGD steps"}
DEPTH_LABEL = "residual block (input → output)"


def plot_report(report, path):
    """Gradient norm vs block depth (log scale), one line per model; panels: init, trained, highway gates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    highway = [m for m in report["models"] if m["highway"]]
    panels = list(SNAPSHOT_TITLES) + (["gates"] if highway else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        if panel == "gates":
            plot_gates(axis, highway)
        else:
            plot_norms(axis, report, panel)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def plot_norms(axis, report, snapshot):
    """Gradient norm per block of every model at `snapshot` ('init' or 'trained'), log scale."""
    for model in report["models"]:
        norms = [b["grad_norm"] for b in model["snapshots"][snapshot]["blocks"]]
        axis.plot(range(1, len(norms) + 1), norms, marker=".", label=model["name"])
    axis.set_yscale("log")
    axis.set_xlabel(DEPTH_LABEL)
    axis.set_ylabel("‖dL/d block output‖₂")
    axis.set_title(SNAPSHOT_TITLES[snapshot].format(steps=report["recipe"]["steps"]))
    axis.legend(fontsize=8)


def plot_gates(axis, models):
    """Mean highway gate T per block, at init (dashed) and after training (solid)."""
    for model in models:
        for snapshot, style in (("init", "--"), ("trained", "-")):
            gates = [b["gate_mean"] for b in model["snapshots"][snapshot]["blocks"]]
            axis.plot(range(1, len(gates) + 1), gates, style, marker=".", label=f"{model['name']} {snapshot}")
    axis.set_ylim(0, 1)
    axis.set_xlabel(DEPTH_LABEL)
    axis.set_ylabel("mean gate T")
    axis.set_title("highway gates (T: share of F(x))")
    axis.legend(fontsize=8)


def summary_lines(report):
    """One line per model and snapshot: loss, first/last gradient ratio, flags."""
    for model in report["models"]:
        for name, snapshot in model["snapshots"].items():
            flags = ", ".join(snapshot["flags"]) or "ok"
            ratio = snapshot["ratio_first_last"]
            ratio = f"{ratio:.3g}" if isinstance(ratio, float) else ratio
            yield (f"{model['name']:>12} {name:>7} step {snapshot['step']:>5}: loss {snapshot['loss']:.3f}, "
                   f"grad-norm first/last block {ratio} -> {flags}")


def write_outputs(report, output):
    """Write diagnose.json and diagnose.png into `output` (created), each atomically; returns their paths.

    Example:
        >>> import tempfile
        >>> from reszoo.analysis.diagnose import diagnose
        >>> report = diagnose(["resnet20"], steps=0, batch_size=8, width=4, image_size=(8, 8))
        >>> [os.path.basename(path) for path in write_outputs(report, os.path.join(tempfile.mkdtemp(), "diag"))]
        ['diagnose.json', 'diagnose.png']
    """
    json_path, png_path = paths = [os.path.join(output, name) for name in DIAGNOSE_FILES]
    write_json(json_path, report, non_finite=str)
    atomic_write(png_path, lambda temp: plot_report(report, temp))
    return paths
