"""`reszoo export [MODEL]`: TFLite/ONNX/SavedModel/.keras artifacts with parity gates (see `export.pipeline`).

MODEL is a registered name (random init), a `.keras` file (its metadata gives preprocessing and labels) or a
SavedModel dir; without MODEL the shipped `saved_models/resnet20_digits.keras`. Exit 0 when every artifact
passed its gate, 1 when one failed (artifacts kept, report says why), 2 for user errors.

Example:
    $ reszoo export --format tflite --format onnx --precision fp32 --precision int8 --data digits
    $ reszoo export resnet50 --all --data photos/ --output exports/r50 --force
    $ reszoo export model.keras --precision int8 --int8-io --target edgetpu --data digits
    $ reszoo export model.keras --raw-input --precision fp32 --precision int8 --data photos/
    $ reszoo export model.keras --precision int8 --calibration entropy --data digits
    $ reszoo export model.keras --format onnx --precision int8 --onnx-target x86-avx2 --data digits
    $ reszoo export model.keras --format micro --data digits   # <name>_model_data.cc/.h for TFLite Micro
    $ reszoo export --precision int8 --check-cpu arm64 --check-cpu x86-avx2   # also verified on emulated CPUs
    $ reszoo export model.keras --prune 0.5 --prune-structure 2:4 --qat --data digits --finetune-epochs 2
"""
import dataclasses
import os
import re

import click

from export.core.files import check_output_target
from export.core.errors import UserError
from export.formats import ALL_PRECISIONS, FORMATS
from export.targets import TARGETS

DEFAULT_MODEL = os.path.join("saved_models", "resnet20_digits.keras")
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}


def parse_size(text):
    """'512K' / '2MB' / '1048576' -> bytes; UserError otherwise."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in SIZE_UNITS:
        raise UserError(f"--max-size {text!r}: expected bytes with an optional unit, e.g. 512K or 2MB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def default_model_path():
    """The shipped default model: ./saved_models/... or next to the installed package."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for candidate in (DEFAULT_MODEL, os.path.join(package_root, DEFAULT_MODEL)):
        if os.path.isfile(candidate):
            return candidate
    raise UserError(f"no MODEL given and the default model {DEFAULT_MODEL} is not there yet; "
                    "train it (reszoo train) or pass a model name/.keras file/SavedModel dir")


def precheck_data(data):
    """Cheap check of --data before TensorFlow loads (`export.data.sources.check_source`; None: recorded data)."""
    from export.data.sources import check_source

    if data is not None:
        check_source(data)


def resolve_model(model):
    """(model object or path, name) for the MODEL argument (`reszoo.models.resolve`; None: the shipped model)."""
    from reszoo.models.resolve import resolve_model as resolve

    resolved = resolve(default_model_path() if model is None else model, allowed=("name", "keras", "saved_model"))
    return resolved.source(), resolved.name


@click.command("export")
@click.argument("model", required=False)
@click.option("--format", "formats", multiple=True, type=click.Choice(list(FORMATS)),
              help="Repeatable [tflite and onnx].")
@click.option("--precision", "precisions", multiple=True, metavar="[FORMAT:]PRECISION",
              help=f"Repeatable [fp32]; one of {', '.join(ALL_PRECISIONS)}. Plain: every format offering it; "
              "FORMAT:PRECISION (e.g. tflite:fp16): that format only.")
@click.option("--all", "all_formats", is_flag=True, help="Every format with every precision it offers.")
@click.option("--data", default=None, help="'digits', a folder of class sub-folders, or an .npz with x/y "
              "[the model's recorded data, else digits].")
@click.option("--calibration-samples", type=click.IntRange(1), default=300, show_default=True)
@click.option("--verify-samples", type=click.IntRange(1), default=None, help="Cap on held-out samples [all].")
@click.option("--int8-io", is_flag=True, help="TFLite int8 with int8 input/output tensors (with --raw-input: int8 "
              "output, uint8 pixel input).")
@click.option("--raw-input", is_flag=True, help="Bake the preprocessing into the graph: tflite/onnx/saved_model "
              "artifacts take uint8 NHWC pixels at the model's input size (.keras stays float).")
@click.option("--calibration", default=None, metavar="METHOD", help="How int8/int16x8 activation ranges are "
              "calibrated: minmax, percentile, entropy or mse [minmax] (docs/quantization.md 'Calibration methods').")
@click.option("--onnx-target", default=None, metavar="CPU", help="CPU the ONNX int8 file is for: x86-vnni (U8S8), "
              "x86-avx2 (U8S8, 7-bit weights: cannot saturate) or arm (S8S8) [this host's].")
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch dimension instead of static batch 1.")
@click.option("--output", "output_dir", default=None, help="Output dir [exports/<model-name>].")
@click.option("--force", is_flag=True, help="Replace an existing output dir.")
@click.option("--prune", type=float, default=None, help="Target sparsity, e.g. 0.5 (needs --data).")
@click.option("--prune-structure", default=None, help="Structured sparsity, e.g. 2:4.")
@click.option("--qat", is_flag=True, help="Quantization-aware training, then int8 artifacts (needs --data).")
@click.option("--cluster", type=int, default=None, help="Weight clustering with N clusters (needs --data).")
@click.option("--finetune-epochs", type=click.IntRange(1), default=2, show_default=True)
@click.option("--max-optimization-drop", type=float, default=None, metavar="PTS", help="Held-out accuracy points "
              "--prune/--cluster/--qat may cost against the given model before the run fails [1.0].")
@click.option("--target", type=click.Choice(list(TARGETS)), default=None, help="Check TFLite ops for an edge target (micro sources are always checked for micro).")
@click.option("--max-size", default=None, help="Flag TFLite files larger than this (e.g. 512K, 2MB).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Runtime threads for verification.")
@click.option("--gate", "gates", multiple=True, help="Override a parity gate: PRECISION.KEY=VALUE, e.g. "
              "int8.min_agreement=0.97 (keys: max_rel_err, min_agreement, max_accuracy_drop, noise_multiple, "
              "noise_floor; an explicit fp32.max_rel_err replaces the noise-derived fp32 limit).")
@click.option("--equalize/--no-equalize", default=True, show_default=True,
              help="Cross-layer equalization before quantization (exact in float).")
@click.option("--fallback/--no-fallback", default=None, help="Keep the worst layers of a failing int8 file in "
              "float until its gate passes [on; off for --target edgetpu/micro, which must stay fully int8].")
@click.option("--latency-runs", type=click.IntRange(0), default=30, show_default=True)
@click.option("--check-cpu", "check_cpus", multiple=True, metavar="KIND", help="Also verify TFLite/ONNX files on "
              "this CPU kind, emulated with QEMU (repeatable): host, x86-avx2, x86-sse4, arm64-dotprod, arm64-v8, "
              "arm64 (both arm64 kinds); `reszoo cpus install` sets them up.")
def export_command(model, formats, precisions, all_formats, data, calibration_samples, verify_samples, int8_io,
                   raw_input, calibration, onnx_target, dynamic_batch, output_dir, force, prune, prune_structure, qat,
                   cluster, finetune_epochs, max_optimization_drop, target, max_size, threads, gates, equalize,
                   fallback, latency_runs, check_cpus):
    """Export MODEL to edge formats and verify each artifact's parity in its own runtime."""
    from rich.console import Console

    from export.pipeline import export_model
    from export.request import ExportRequest

    request = ExportRequest.build(  # plans and validates once, before TensorFlow loads
        formats=list(formats), precisions=list(precisions), all_formats=all_formats, data=data,
        output_dir=output_dir, force=force, int8_io=int8_io, dynamic_batch=dynamic_batch,
        calibration_samples=calibration_samples, gates=list(gates), target=target, max_size=parse_size(max_size),
        optimizations={"prune": prune, "prune_structure": prune_structure, "qat": qat, "cluster": cluster,
                       "finetune_epochs": finetune_epochs},
        threads=threads, verify_samples=verify_samples, latency_runs=latency_runs, raw_input=raw_input,
        calibration=calibration, equalize=equalize, fallback=fallback, onnx_target=onnx_target,
        max_optimization_drop=max_optimization_drop, check_cpus=check_cpus)
    precheck_data(data)
    if output_dir:  # before TensorFlow loads; export_model checks again (also the default exports/<name>)
        check_output_target(output_dir, force, {"the input model": model or default_model_path(),
                                                "the --data path": data})
    source, name = resolve_model(model)
    request = dataclasses.replace(request, model_name=name)
    console = Console(stderr=True)
    result = export_model(source, request, show_progress=console.is_terminal,
                          notify=lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True))
    print_outcome(result.report, result.output_dir, f"export: {result.output_dir}")
    raise SystemExit(0 if result.passed else 1)


def print_outcome(report, output_dir, title):
    """The rich table, target problems and a one-line verdict (stdout)."""
    from rich.console import Console

    from export.report import cpu_failure_lines, cpu_table, summary_table

    terminal = Console()
    out = terminal if terminal.is_terminal else Console(width=200)
    gate = (report.get("optimizations") or {}).get("gate")
    out.print(summary_table(report["artifacts"], title=title, gate=gate))
    if cpu_table(report["artifacts"]) is not None:
        out.print(cpu_table(report["artifacts"]))
    for line in cpu_failure_lines(report["artifacts"]):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    for file, check in (report.get("target_checks") or {}).items():
        verdict = "ok" if check["passed"] else "; ".join(check["problems"])
        out.print(f"target {check['target']} {file}: {verdict}", markup=False, highlight=False)
    from export.report import quantization_note

    if gate and gate.get("hint"):
        out.print(f"optimization hint: {gate['hint']}", markup=False, highlight=False)
    for artifact in report["artifacts"]:
        if not artifact["parity"]["passed"] and quantization_note(artifact):
            out.print(f"{artifact['file']}: {quantization_note(artifact)}", markup=False, highlight=False)
    failed = [a["file"] for a in report["artifacts"] if not a["parity"]["passed"]]
    failed += [f for f, c in (report.get("target_checks") or {}).items() if not c["passed"]]
    out.print(f"{outcome_verdict(failed, gate)} (report: {os.path.join(output_dir, 'report.md')})", markup=False,
              highlight=False)


def outcome_verdict(failed_files, gate):
    """The verdict line: failing files and a failing optimization step (by how much), or that all passed;
    an optimization gate that could not be measured is said, never passed silently.

    Example:
        >>> outcome_verdict(["m_int8.tflite"], None)
        'FAILED: m_int8.tflite'
    """
    from export.optimize.gate import failure_line

    failures = ([failure_line(gate)] if gate and failure_line(gate) else []) + list(dict.fromkeys(failed_files))
    verdict = f"FAILED: {'; '.join(failures)}" if failures else "all artifacts passed"
    if gate and not gate.get("measured"):
        verdict += f"; optimization gate NOT MEASURED ({gate.get('reason')})"
    return verdict
