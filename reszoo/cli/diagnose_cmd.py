"""`reszoo diagnose MODEL...`: per-block gradient norms, activation statistics and highway gates, at
initialisation and after N SGD steps; writes DIR/diagnose.json and DIR/diagnose.png (atomically).

Example:
    $ reszoo diagnose plain56 resnet56 highway56 --steps 50 --width 8 --output diag/
"""
import json
import math
import os

import click

from export.core.files import atomic_write
from export.core.errors import UserError

SNAPSHOT_TITLES = {"init": "at initialisation", "trained": "after {steps} SGD steps"}


def json_safe(value):
    """Replace non-finite floats by strings ('inf', 'nan') so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


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
            continue
        for model in report["models"]:
            norms = [b["grad_norm"] for b in model["snapshots"][panel]["blocks"]]
            axis.plot(range(1, len(norms) + 1), norms, marker=".", label=model["name"])
        axis.set_yscale("log")
        axis.set_xlabel("residual block (input → output)")
        axis.set_ylabel("‖dL/d block output‖₂")
        axis.set_title(SNAPSHOT_TITLES[panel].format(steps=report["recipe"]["steps"]))
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)


def plot_gates(axis, models):
    """Mean highway gate T per block, at init (dashed) and after training (solid)."""
    for model in models:
        for snapshot, style in (("init", "--"), ("trained", "-")):
            gates = [b["gate_mean"] for b in model["snapshots"][snapshot]["blocks"]]
            axis.plot(range(1, len(gates) + 1), gates, style, marker=".", label=f"{model['name']} {snapshot}")
    axis.set_ylim(0, 1)
    axis.set_xlabel("residual block (input → output)")
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


@click.command("diagnose")
@click.argument("models", nargs=-1, required=True)
@click.option("--data", default="digits", show_default=True, help="'digits', a class-folder dir, or an .npz")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=0), help="SGD steps to train")
@click.option("--output", default="diagnose", show_default=True, type=click.Path(file_okay=False),
              help="directory for diagnose.json and diagnose.png")
@click.option("--width", default=None, type=click.IntRange(min=1), help="builder width (CIFAR families: 16)")
@click.option("--image-size", default=None, type=click.IntRange(min=8), help="square input size (default: model's)")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2))
@click.option("--learning-rate", default=0.05, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
def diagnose_command(models, data, steps, output, width, image_size, batch_size, learning_rate, seed):
    """Gradient flow per residual block of MODELS at init and after --steps SGD steps on --data."""
    from reszoo.diagnose import diagnose

    if os.path.exists(output) and not os.path.isdir(output):
        raise UserError(f"--output {output!r} exists and is not a directory")
    size = (image_size, image_size) if image_size else None
    report = json_safe(diagnose(list(models), data=data, steps=steps, batch_size=batch_size,
                                learning_rate=learning_rate, seed=seed, width=width, image_size=size))
    os.makedirs(output, exist_ok=True)
    json_path, png_path = os.path.join(output, "diagnose.json"), os.path.join(output, "diagnose.png")
    atomic_write(json_path, lambda temp: write_json(report, temp))
    atomic_write(png_path, lambda temp: plot_report(report, temp))
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"wrote {json_path} and {png_path}")


def write_json(report, path):
    """Write `report` as indented strict JSON."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, allow_nan=False)
        handle.write("\n")
