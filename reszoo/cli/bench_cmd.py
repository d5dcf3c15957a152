"""`reszoo bench`: latency, throughput, size and accuracy of every exported artifact vs its Keras reference.

Example:
    $ reszoo bench exports/demo --runs 50 --threads 1
    $ reszoo bench --model resnet50 --input-size 224
"""
import os

import click

from export.errors import UserError


@click.command("bench")
@click.argument("target", required=False, metavar="DIR_OR_MODEL")
@click.option("--model", "model", default=None, help="Registered model name or .keras file: export it to a temp "
              "dir (TFLite + ONNX, fp32 + int8) and bench that. Same as passing it as DIR_OR_MODEL.")
@click.option("--input-size", type=click.IntRange(8), default=None,
              help="Square input size for --model (default: the model's).")
@click.option("--runs", type=click.IntRange(1), default=50, show_default=True,
              help="Timed batch-1 runs per artifact.")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True,
              help="Untimed warm-up runs per artifact.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="Threads for every runtime (TFLite, onnxruntime, TensorFlow) and for sgemm.")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True,
              help="Batch size of the throughput measurement.")
@click.option("--samples", type=click.IntRange(1), default=None,
              help="Evaluate accuracy on the first N held-out images "
              "(default: all for an export dir, 64 for --model).")
@click.option("--data", default=None, help="Evaluation data: digits | class-folder dir | .npz "
              "(default: the manifest's data, else digits).")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Where bench.json/.md/.png go (default: the export dir; for --model: not written unless given).")
def bench_command(target, model, input_size, runs, warmup, threads, batch, samples, data, output):
    """Benchmark an export dir (every artifact + the Keras reference) or a model exported on the fly."""
    from reszoo import bench

    if target and model:
        raise UserError("give either DIR_OR_MODEL or --model, not both")
    target = target or model
    if not target:
        raise UserError("give an export dir (e.g. exports/demo) or --model NAME")
    settings = dict(runs=runs, warmup=warmup, threads=threads, batch=batch, samples=samples, data=data)
    if not bench.looks_like_model(target):
        if input_size:
            raise UserError("--input-size applies to a model (--model NAME), not to an export dir")
        report = bench.bench_export_dir(target, output=output, **settings)
        written = output or target
    else:
        report = bench.bench_model(target, input_size=input_size, output=output, **settings)
        written = output
    click.echo(bench.render_markdown(report))
    if written:
        click.echo(f"wrote {', '.join(os.path.join(written, name) for name in bench.BENCH_FILES)}")
