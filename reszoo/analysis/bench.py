"""Benchmark every artifact of an export dir against its Keras reference, measured in the same run.

For each artifact listed in the export dir's `manifest.json`, and for the Keras reference model (the dir's
`keras` artifact, else its source model), `bench_export_dir` measures: file size, median and p90 latency at
batch 1 (after warm-up runs), throughput (images/s at batch B), accuracy and top-1 agreement with the
reference on the held-out split (`export.data.sources.split`, the manifest's preprocessing), and the speed-up
ratio vs the reference. It also measures the box's achievable float32 GFLOP/s (numpy matmul, sgemm) and
divides the model's FLOPs by it: the roofline estimate printed next to each measured latency.

Reading the untrusted dir lives in `bench_export_dir`, the outputs (`bench.json`, `bench.md`, `bench.png`, written
atomically) in `bench_report`. The thread count is fixed for every runtime and recorded, with the CPU facts
(`export.core.cpu`: model name, architecture, int8 ISA flags). `run_bench` is what `reszoo bench` calls: it
resolves DIR_OR_MODEL (`reszoo.models.resolve`) and benches an export dir or a model exported on the fly.

Example:
    >>> report = bench_export_dir("exports/demo", runs=20, threads=1)  # doctest: +SKIP
    >>> [row["name"] for row in report["rows"]][:2]  # doctest: +SKIP
    ['keras (reference)', 'model_fp32.tflite']
"""
import datetime
import os
import platform
import tempfile
import time

import numpy as np

from export.core.cpu import cpu_facts
from export.core.errors import UserError
from export.manifest import read_manifest, size_of
from export.runtimes import KerasRunner, Runner, load_runner
from reszoo.analysis.bench_export_dir import artifact_path, check_integrity, eval_split, reference_model_path
from reszoo.analysis.bench_report import write_outputs
from reszoo.models.resolve import resolve_model

REFERENCE_NAME = "keras (reference)"
SGEMM_SIZE = 1024
SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------------------- machine facts
def fix_tensorflow_threads(threads):
    """Pin TF's intra-op pool to `threads` (inter-op 1); returns the intra-op count TF will really use."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialized in this process: keep its setting, report it
        pass
    return tf.config.threading.get_intra_op_parallelism_threads() or None


def sgemm_gflops(threads, size=SGEMM_SIZE, min_seconds=0.5):
    """Achievable float32 GFLOP/s of a numpy `size`x`size` matmul on `threads` BLAS threads (best of reps).

    Example:
        >>> sgemm_gflops(1, size=256, min_seconds=0.05) > 0.1
        True
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads):
        a @ b  # warm-up: page in, spin up the BLAS pool
        started = time.perf_counter()
        while time.perf_counter() - started < min_seconds:
            tick = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - tick)
    return 2.0 * size ** 3 / best / 1e9


def model_flops(model):
    """FLOPs (2 x multiply-adds) of one image through `model`'s Conv2D and Dense layers."""
    from reszoo.models.flops import count_macs

    return 2 * count_macs(model)


# ------------------------------------------------------------------------------------------------ measurement
class GraphKerasRunner(KerasRunner):
    """The Keras reference run as a traced `tf.function` (graph mode, no XLA), Keras' fast inference path.

    Eager `model(x)` would charge the reference with Python dispatch per layer; this keeps the comparison fair.
    """

    def use(self, model):
        import tensorflow as tf

        super().use(model)
        self.serve = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        self.run_batch(np.zeros((1, *model.input_shape[1:]), "float32"))  # trace now, not in a timed run

    def predict(self, x):
        return Runner.predict(self, x)

    def run_batch(self, x):
        return self.serve(x).numpy().astype("float32")


def time_calls(predict, x, runs, warmup):
    """Wall times in ms of `runs` calls `predict(x)` after `warmup` untimed calls."""
    for _ in range(warmup):
        predict(x)
    times = []
    for _ in range(runs):
        tick = time.perf_counter()
        predict(x)
        times.append((time.perf_counter() - tick) * 1e3)
    return times


def batch_of(x, batch):
    """The first `batch` images of `x`, repeated when `x` has fewer."""
    reps = -(-batch // len(x))
    return np.concatenate([x] * reps)[:batch]


def predict_all(runner, x, batch):
    """Class scores of `runner` on all of `x`, fed in chunks of `batch`."""
    return np.concatenate([np.asarray(runner.predict(x[i:i + batch])) for i in range(0, len(x), batch)])


def measure_runner(runner, x_eval, y_eval, *, runs, warmup, batch):
    """Latency (batch 1), throughput (batch `batch`) and predictions of one runner on the eval images."""
    latencies = runner.latency_ms(x_eval[:1], runs=runs, warmup=warmup)
    x_batch = batch_of(x_eval, batch)
    batch_runs = max(3, runs // batch)
    batch_times = time_calls(runner.predict, x_batch, batch_runs, 1)
    predictions = predict_all(runner, x_eval, batch).reshape(len(x_eval), -1).argmax(axis=-1)
    return {
        "latency_median_ms": float(np.median(latencies)),
        "latency_p90_ms": float(np.percentile(latencies, 90)),
        "throughput_ips": float(batch / (np.median(batch_times) / 1e3)),
        "accuracy": None if y_eval is None else float((predictions == y_eval).mean()),
        "predictions": predictions,
    }


# ------------------------------------------------------------------------------------------------ the benchmark
def bench_rows(export_dir, manifest, x_eval, y_eval, *, runs, warmup, batch, threads, labels_meaningful=True,
               trust=False):
    """One measured row for the Keras reference, then one per manifest artifact (same run, same threads).

    Artifacts `export.verify.not_run_reason` refuses to run (SavedModels without `trust`) are left out.
    """
    from export.verify import not_run_reason

    reference_path = reference_model_path(export_dir, manifest)
    entries = [(REFERENCE_NAME, "keras", "fp32", reference_path)]
    entries += [(a["file"], a["format"], a.get("precision", "fp32"), artifact_path(export_dir, a))
                for a in manifest["artifacts"] if a.get("format") != "keras" and not not_run_reason(a, trust)]
    rows, reference = [], None
    for name, fmt, precision, path in entries:
        runner = GraphKerasRunner(path, threads) if name == REFERENCE_NAME else load_runner(path, fmt, threads)
        if name == REFERENCE_NAME:
            flops = model_flops(runner.model)
        measured = measure_runner(runner, x_eval, y_eval if labels_meaningful else None, runs=runs,
                                  warmup=warmup, batch=batch)
        predictions = measured.pop("predictions")
        reference = reference or {**measured, "predictions": predictions}
        file = os.path.relpath(path, os.path.realpath(export_dir))
        rows.append({"name": name, "format": fmt, "precision": precision, "file": file,
                     "size_bytes": size_of(path), **measured,
                     "top1_agreement": float((predictions == reference["predictions"]).mean()),
                     "speedup_vs_reference": reference["latency_median_ms"] / measured["latency_median_ms"]})
    return rows, reference_path, flops


def add_speedup_vs_fp32(rows):
    """Each row's `speedup_vs_fp32`: the fp32 row of its format's median latency / its own (same run; None
    without an fp32 row of that format), e.g. ONNX int8 2.9 = onnxruntime int8 runs 2.9x faster than fp32.

    Example:
        >>> rows = [{"format": "onnx", "precision": "fp32", "latency_median_ms": 3.0},
        ...         {"format": "onnx", "precision": "int8", "latency_median_ms": 1.0}]
        >>> [r["speedup_vs_fp32"] for r in add_speedup_vs_fp32(rows)]
        [1.0, 3.0]
    """
    fp32 = {r["format"]: r["latency_median_ms"] for r in rows if r["precision"] == "fp32"}
    for row in rows:
        base = fp32.get(row["format"])
        row["speedup_vs_fp32"] = base / row["latency_median_ms"] if base and row["latency_median_ms"] else None
    return rows


def roofline(flops, rows, threads):
    """sgemm GFLOP/s measured now, the estimated latency for `flops` and measured/estimated for every row."""
    gflops = sgemm_gflops(threads)
    estimate_ms = flops / (gflops * 1e9) * 1e3
    for row in rows:
        row["measured_over_roofline"] = row["latency_median_ms"] / estimate_ms
    return {"sgemm_gflops": gflops, "sgemm_size": SGEMM_SIZE, "model_flops": flops, "estimated_latency_ms": estimate_ms}


def bench_export_dir(export_dir, *, runs=50, warmup=5, threads=1, batch=8, output=None, data=None, samples=None,
                     labels_meaningful=True, note=None, trust=False):
    """Benchmark all artifacts of `export_dir`; write bench.json/.md/.png to `output` (default the dir).

    Returns the report dict (also written as bench.json). The dir is not trusted: manifest paths must stay
    inside it (UserError), every sha256 is checked first (IntegrityError, one line per problem), and SavedModel
    artifacts (graph code) are only run with `trust`, as in `reszoo verify`.

    Example:
        >>> report = bench_export_dir("exports/demo", runs=10)  # doctest: +SKIP
        >>> report["rows"][1]["speedup_vs_reference"] > 0  # doctest: +SKIP
        True
    """
    check_positive(runs=runs, batch=batch, threads=threads, samples=1 if samples is None else samples,
                   warmup=warmup + 1)
    manifest = read_manifest(export_dir)
    check_integrity(export_dir, manifest)  # before anything is loaded or timed
    applied_threads = fix_tensorflow_threads(threads)
    x_eval, y_eval, data_description = eval_split(manifest, data, samples)
    rows, reference_path, flops = bench_rows(export_dir, manifest, x_eval, y_eval, runs=runs, warmup=warmup,
                                             batch=batch, threads=threads, labels_meaningful=labels_meaningful,
                                             trust=trust)
    report = {
        "schema": SCHEMA_VERSION,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "export_dir": os.path.abspath(export_dir),
        "model": (manifest.get("source_model") or {}).get("name"),
        "reference": os.path.abspath(reference_path),
        "machine": machine_facts(threads, applied_threads),
        "settings": {"runs": runs, "warmup": warmup, "batch": batch, "latency_batch": 1},
        "data": data_description,
        "accuracy_note": note,
        "roofline": roofline(flops, rows, threads),
        "rows": add_speedup_vs_fp32(rows),
    }
    write_outputs(report, output or export_dir)
    return report


def machine_facts(threads, tensorflow_threads):
    """bench.json's "machine": CPU model, architecture and int8 flags (`export.core.cpu`), threads, load, Python.

    Example:
        >>> sorted(machine_facts(1, 1))[:3]
        ['architecture', 'cpu_model', 'int8_flags']
    """
    cpu = cpu_facts()
    return {"cpu_model": cpu["model"], "architecture": cpu["machine"], "int8_flags": cpu["int8_flags"],
            "logical_cpus": os.cpu_count(), "threads": threads,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "tensorflow_intra_op_threads": tensorflow_threads, "python": platform.python_version()}


def check_positive(**values):
    """UserError naming the first of `values` that is below 1 (pass `warmup + 1` to allow 0 warm-up runs)."""
    for name, value in values.items():
        if value < 1:
            raise UserError(f"--{name} must be >= {1 if name != 'warmup' else 0}")


# ------------------------------------------------------------------------------------- a model exported on the fly
MODEL_MODE_FORMATS = ("keras", "tflite", "onnx")
MODEL_MODE_PRECISIONS = ("fp32", "int8")
MODEL_MODE_SAMPLES = 64
MODEL_MODE_CALIBRATION = 100
RANDOM_INIT_SEED = 0
MODEL_MODE_EXPORT_LATENCY_RUNS = 3  # the export's own parity latency; bench measures latency properly afterwards


def model_to_export(resolved, input_size):
    """(model or .keras path, labels_meaningful, note) for `bench_model`; random-init weights for a zoo name."""
    if resolved.kind == "keras":
        return resolved.path, True, None
    import keras

    entry = resolved.entry
    size = input_size or entry.default_input[0]
    keras.utils.set_random_seed(RANDOM_INIT_SEED)  # the same random weights in every run, so runs compare
    model = resolved.build(input_shape=(size, size, entry.default_input[2]), num_classes=entry.default_classes)
    note = (f"{entry.name} has random-init weights (seed {RANDOM_INIT_SEED}, {entry.default_classes} classes), so "
            "accuracy is not meaningful; quality = top-1 agreement with the Keras reference. Calibration "
            f"(train split) and evaluation (held-out split) use real images: the embedded digits resized to "
            f"{size}x{size}.")
    return model, False, note


def bench_model(target, *, input_size=None, output=None, data=None, samples=None, runs=50, warmup=5, threads=1,
                batch=8):
    """Export `target` (zoo name or .keras) to a temp dir (keras + TFLite/ONNX fp32 + int8), then bench it.

    Returns the bench report; files are written only when `output` is given.

    Example:
        >>> report = bench_model("resnet20", runs=5, samples=16)  # doctest: +SKIP
        >>> [r["name"] for r in report["rows"]]  # doctest: +SKIP
        ['keras (reference)', 'resnet20_fp32.tflite', 'resnet20_int8.tflite', 'resnet20_fp32.onnx', ...]
    """
    from export.pipeline import export_model

    check_positive(runs=runs, batch=batch, threads=threads)
    resolved = resolve_model(target, allowed=MODEL_KINDS)
    check_input_size(resolved.kind, input_size)
    fix_tensorflow_threads(threads)
    model, labels_meaningful, note = model_to_export(resolved, input_size)
    samples = samples or MODEL_MODE_SAMPLES
    with tempfile.TemporaryDirectory(prefix="reszoo-bench-") as workdir:
        export_dir = os.path.join(workdir, "export")
        started = time.perf_counter()
        exported = export_model(model, formats=list(MODEL_MODE_FORMATS), precisions=list(MODEL_MODE_PRECISIONS),
                                data=data or "digits", output_dir=export_dir, threads=threads,
                                calibration_samples=MODEL_MODE_CALIBRATION, verify_samples=samples,
                                latency_runs=MODEL_MODE_EXPORT_LATENCY_RUNS)
        export_seconds = time.perf_counter() - started
        report = bench_export_dir(export_dir, runs=runs, warmup=warmup, threads=threads, batch=batch,
                                  output=output or os.path.join(workdir, "bench"), data=data, samples=samples,
                                  labels_meaningful=labels_meaningful, note=note)
    report["export"] = {"seconds": export_seconds, "parity_passed": exported.passed,
                        "temporary_dir": "deleted after the run"}
    if output:
        write_outputs(report, output)
    return report


# ------------------------------------------------------------------------------------------- `reszoo bench`
MODEL_KINDS = ("name", "keras")
TARGET_KINDS = ("export_dir", *MODEL_KINDS)
INPUT_SIZE_REFUSALS = {  # kind -> why --input-size does not apply to it
    "export_dir": "--input-size applies to a model (--model NAME), not to an export dir",
    "keras": "--input-size applies to zoo model names; a .keras file has its own input size",
}


def check_input_size(kind, input_size):
    """UserError when `--input-size` was given for a kind that has its own size (INPUT_SIZE_REFUSALS).

    Example:
        >>> check_input_size("name", 64)
        >>> check_input_size("keras", 64)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        export.core.errors.UserError: --input-size applies to zoo model names; a .keras file has its own input size
    """
    if input_size and kind in INPUT_SIZE_REFUSALS:
        raise UserError(INPUT_SIZE_REFUSALS[kind])


def run_bench(target, *, input_size=None, output=None, trust=False, **settings):
    """`reszoo bench DIR_OR_MODEL`: (report, dir the files went to or None).

    `target` is resolved once (`reszoo.models.resolve`): an export dir is benched in place (files into `output`,
    default the dir; SavedModels only with `trust`); a zoo name or .keras file is exported to a temp dir and
    benched (files only into `output`). Raises IntegrityError for a damaged dir, UserError for bad input.

    Example:
        >>> report, written = run_bench("exports/demo", runs=5)  # doctest: +SKIP
        >>> written  # doctest: +SKIP
        'exports/demo'
    """
    resolved = resolve_model(target, allowed=TARGET_KINDS)
    if resolved.kind != "export_dir":
        return bench_model(target, input_size=input_size, output=output, **settings), output
    check_input_size(resolved.kind, input_size)
    return bench_export_dir(resolved.path, output=output, trust=trust, **settings), output or resolved.path
