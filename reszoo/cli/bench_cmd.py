"""`reszoo bench`: latency, throughput, size and accuracy of every exported artifact vs its Keras reference.

Example:
    $ reszoo bench exports/demo --runs 50 --threads 1
    $ reszoo bench --model resnet50 --input-size 224

An export dir is not trusted: its manifest paths must stay inside it (exit 2) and every sha256 is checked
before anything is loaded or timed (exit 1, one line per problem, as `reszoo verify`); SavedModel artifacts
run only with --trust.
"""
import click

from export.core.errors import UserError


def one_target(target, model):
    """DIR_OR_MODEL or --model (exactly one of them), as given.

    Example:
        >>> one_target(None, "resnet20")
        'resnet20'
    """
    if target and model:
        raise UserError("give either DIR_OR_MODEL or --model, not both")
    if not (target or model):
        raise UserError("give an export dir (e.g. exports/demo) or --model NAME")
    return target or model


def echo_integrity_failure(export_dir, error):
    """One `error:` line per integrity problem and a verdict on stderr (as `reszoo verify` does)."""
    for problem in error.problems:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"bench: {export_dir} FAILED integrity check (sha256 vs manifest.json); nothing was timed", err=True)


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
@click.option("--trust", is_flag=True, help="Also run SavedModel artifacts (their graphs can run arbitrary TF ops).")
def bench_command(target, model, input_size, runs, warmup, threads, batch, samples, data, output, trust):
    """Benchmark an export dir (every artifact + the Keras reference) or a model exported on the fly."""
    from reszoo.analysis.bench import run_bench
    from reszoo.analysis.bench_export_dir import IntegrityError
    from reszoo.analysis.bench_report import render_markdown, written_files

    target = one_target(target, model)
    try:
        report, written = run_bench(target, input_size=input_size, output=output, trust=trust, runs=runs,
                                    warmup=warmup, threads=threads, batch=batch, samples=samples, data=data)
    except IntegrityError as error:
        echo_integrity_failure(target, error)
        raise SystemExit(1) from None
    click.echo(render_markdown(report))
    if written:
        click.echo(f"wrote {', '.join(written_files(written))}")
