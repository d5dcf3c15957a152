"""`reszoo predict ARTIFACT IMAGE...`: top-k labels and probabilities of an exported model for image files.

ARTIFACT: a `.keras` file, a `.tflite` / `.onnx` file listed in its export dir's manifest.json, or an export dir
(choose with --artifact FILE or --precision P; default: the int8 artifact that passed its gate with the best
parity, else fp32). Export dirs are integrity-checked (sha256) before anything runs; SavedModels are not run.

Exit 0 when every image was predicted; 2 for user errors (one `error:` line), and also when some images could
not be read: one `error:` line each on stderr, the other images are still reported.

Example:
    $ reszoo predict exports/resnet20_digits 7.png 3.jpg --top-k 3
    $ reszoo predict exports/resnet20_digits/resnet20_fp32.onnx 7.png --json
"""
import json

import click


def result_table(result):
    """A rich Table (rank, label, probability) of one image's top-k."""
    from rich.table import Table

    table = Table(title=result["image"])
    for name, justify in (("rank", "right"), ("label", "left"), ("index", "right"), ("probability", "right")):
        table.add_column(name, justify=justify)
    for rank, row in enumerate(result["top_k"], 1):
        table.add_row(str(rank), row["label"], str(row["index"]), f"{row['probability']:.4f}")
    return table


def print_tables(results, artifact):
    """The artifact used, then one table per predicted image (stdout)."""
    from rich.console import Console

    console = Console(soft_wrap=True)
    console.print(f"artifact: {artifact.describe()}", highlight=False, markup=False)
    for result in results:
        if "top_k" in result:
            console.print(result_table(result))


def as_json(results, artifact):
    """One JSON document: a list with one entry per image ({"image", "top_k"} or {"image", "error"}), each
    naming the artifact used.

    Example:
        >>> from export.predict import Artifact
        >>> as_json([{"image": "a.png", "error": "bad"}], Artifact("m.keras", "keras", None, {}, None, "given"))
        '[{"image": "a.png", "error": "bad", "artifact": "m.keras"}]'
    """
    return json.dumps([{**result, "artifact": artifact.path} for result in results])


@click.command("predict")
@click.argument("artifact")
@click.argument("images", nargs=-1, required=True)
@click.option("--top-k", type=click.IntRange(1), default=5, show_default=True, help="Classes shown per image.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document instead of tables.")
@click.option("--artifact", "artifact_name", default=None, help="File of the export dir to run.")
@click.option("--precision", default=None, help="Precision to run from the export dir (fp32, int8, ...).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Threads of the runtime [its default].")
def predict_command(artifact, images, top_k, json_output, artifact_name, precision, threads):
    """Predict the classes of IMAGE files with ARTIFACT (.keras, .tflite, .onnx, or an export dir)."""
    from export.predict import choose_artifact, run_artifact

    chosen = choose_artifact(artifact, artifact_name, precision)
    results = run_artifact(chosen, images, top_k, threads)
    if json_output:
        click.echo(as_json(results, chosen))
    else:
        print_tables(results, chosen)
    errors = [result["error"] for result in results if "error" in result]
    for error in errors:
        click.echo(f"error: {error}", err=True)
    raise SystemExit(2 if errors else 0)
