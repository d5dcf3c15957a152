"""Benchmark every artifact of an export dir against its Keras reference, measured in the same run.

For each artifact listed in the export dir's `manifest.json`, and for the Keras reference model (the dir's
`keras` artifact, else its source model), `bench_export_dir` measures: file size, median and p90 latency at
batch 1 (after warm-up runs), throughput (images/s at batch B), accuracy and top-1 agreement with the
reference on the held-out split (`export.data.sources.split`, the manifest's preprocessing), and the speed-up
ratio vs the reference. It also measures the box's achievable float32 GFLOP/s (numpy matmul, sgemm) and
divides the model's FLOPs by it: the roofline estimate printed next to each measured latency.

Results go to `bench.json`, `bench.md` and `bench.png` (latency vs size, accuracy as point label), written
atomically into the output dir. The thread count is fixed for every runtime and recorded, with the CPU model.

Example:
    >>> report = bench_export_dir("exports/demo", runs=20, threads=1)  # doctest: +SKIP
    >>> [row["name"] for row in report["rows"]][:2]  # doctest: +SKIP
    ['keras (reference)', 'model_fp32.tflite']
"""
import datetime
import io
import json
import os
import platform
import tempfile
import time

import numpy as np

from export.core.files import write_bytes
from export.core.errors import UserError
from export.manifest import MANIFEST_FILE, integrity_problems, read_manifest, sha256_of, size_of
from export.manifest import artifact_path as confined_path
from export.report import human_size
from export.runtimes import KerasRunner, Runner, load_runner

BENCH_FILES = ("bench.json", "bench.md", "bench.png")
REFERENCE_NAME = "keras (reference)"
SGEMM_SIZE = 1024
SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------------------- machine facts
def cpu_model():
    """The CPU model name from /proc/cpuinfo (falls back to `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


# ------------------------------------------------------------------------------------------- export-dir reading
class IntegrityError(Exception):
    """The export dir is not what its manifest says (`.problems`: one line each); the CLI exits 1."""

    def __init__(self, export_dir, problems):
        super().__init__(f"{export_dir}: {len(problems)} integrity problem(s)")
        self.problems = problems


def check_integrity(export_dir, manifest):
    """Raise IntegrityError unless every listed artifact (and the reference) hashes as the manifest says.

    Example:
        >>> check_integrity("exports/demo", read_manifest("exports/demo"))  # doctest: +SKIP
    """
    problems = integrity_problems(export_dir, manifest)
    if problems:
        raise IntegrityError(export_dir, problems)


def artifact_path(export_dir, artifact):
    """Real path of a manifest artifact, confined to the dir (`export.manifest.artifact_path`); UserError when
    its file is gone."""
    path = confined_path(export_dir, artifact["file"])
    if not os.path.exists(path):
        raise UserError(f"artifact {artifact['file']!r} listed in {MANIFEST_FILE} is missing from {export_dir!r}")
    return path


def unchanged_source(source):
    """The source model's path when it still hashes to the manifest's `source_model.sha256`, else None."""
    path = source.get("path")
    return path if path and os.path.isfile(path) and sha256_of(path) == source.get("sha256") else None


def reference_model_path(export_dir, manifest):
    """The Keras reference: the dir's `keras` artifact, else the manifest's reference or source `.keras` file.

    Only hash-pinned files qualify: artifacts and `reference.file` are confined to the dir and checked by
    `check_integrity`, `reference.path` too; the source model only while it matches `source_model.sha256`.
    """
    for artifact in manifest["artifacts"]:
        if artifact.get("format") == "keras":
            return artifact_path(export_dir, artifact)
    reference, source = manifest.get("reference") or {}, manifest.get("source_model") or {}
    candidates = [confined_path(export_dir, reference["file"], "reference.file")] if reference.get("file") else []
    candidates += [reference.get("path"), unchanged_source(source)]
    for candidate in filter(None, candidates):
        if str(candidate).endswith(".keras") and os.path.isfile(candidate):
            return candidate
    raise UserError(f"{export_dir!r} has no keras artifact and its source model is not reachable; "
                    "export with `--format keras` to bench against the reference")


NATIVE_SIZES = {"digits": (8, 8)}  # load these small at their own size, resize only the images evaluated


def eval_split(manifest, data, samples):
    """(x, y, description) of the held-out split, preprocessed as the manifest says; y None without labels."""
    from export.data.sources import load, resize, split
    from export.data.preprocess import check_spec, normalize

    try:
        spec = check_spec(manifest.get("preprocessing") or {})
    except ValueError as error:
        raise UserError(f"{MANIFEST_FILE}: {error}") from None
    source = data or (manifest.get("data") or {}).get("source") or "digits"
    size = tuple(spec["input_size"])
    _, held_out = split(load(source, NATIVE_SIZES.get(source, size), spec["channels"],
                             class_names=manifest.get("labels")))
    picked = held_out.take(np.arange(min(samples or len(held_out.x), len(held_out.x))))
    description = f"{source}, held-out split ({len(picked.x)} images, {size[0]}x{size[1]})"
    return normalize(resize(picked.x, size), spec).astype("float32"), picked.y, description


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
        "machine": {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads,
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                    "tensorflow_intra_op_threads": applied_threads, "python": platform.python_version()},
        "settings": {"runs": runs, "warmup": warmup, "batch": batch, "latency_batch": 1},
        "data": data_description,
        "accuracy_note": note,
        "roofline": roofline(flops, rows, threads),
        "rows": rows,
    }
    write_outputs(report, output or export_dir)
    return report


def check_positive(**values):
    """UserError naming the first of `values` that is below 1 (pass `warmup + 1` to allow 0 warm-up runs)."""
    for name, value in values.items():
        if value < 1:
            raise UserError(f"--{name} must be >= {1 if name != 'warmup' else 0}")


# ---------------------------------------------------------------------------------------------------- outputs
def format_fraction(value):
    """'97.5 %' or 'n/a'."""
    return "n/a" if value is None else f"{100 * value:.1f} %"


TABLE_COLUMNS = (
    ("artifact", lambda r: r["name"]),
    ("format", lambda r: r["format"]),
    ("precision", lambda r: r["precision"]),
    ("size", lambda r: human_size(r["size_bytes"])),
    ("median ms", lambda r: f"{r['latency_median_ms']:.2f}"),
    ("p90 ms", lambda r: f"{r['latency_p90_ms']:.2f}"),
    ("img/s", lambda r: f"{r['throughput_ips']:.1f}"),
    ("accuracy", lambda r: format_fraction(r["accuracy"])),
    ("top-1 agree", lambda r: format_fraction(r["top1_agreement"])),
    ("speed-up", lambda r: f"{r['speedup_vs_reference']:.2f}x"),
    ("vs roofline", lambda r: f"{r['measured_over_roofline']:.1f}x"),
)


def markdown_table(rows):
    """The comparison table (one row per artifact, the reference first) as GitHub markdown."""
    lines = ["| " + " | ".join(title for title, _ in TABLE_COLUMNS) + " |",
             "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(row) for _, cell in TABLE_COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def roofline_line(report):
    """One sentence: measured sgemm GFLOP/s, model FLOPs, estimated latency, measured/estimated for the reference."""
    roof, reference = report["roofline"], report["rows"][0]
    return (f"sgemm roofline: numpy float32 {roof['sgemm_size']}x{roof['sgemm_size']} matmul reaches "
            f"{roof['sgemm_gflops']:.1f} GFLOP/s on {report['machine']['threads']} thread(s); the model needs "
            f"{roof['model_flops'] / 1e9:.3f} GFLOPs/image, so the estimate is {roof['estimated_latency_ms']:.2f} ms; "
            f"measured/estimated = {reference['measured_over_roofline']:.2f}x for the Keras reference "
            "(column 'vs roofline' for every artifact).")


def render_markdown(report):
    """bench.md: settings, machine, the table and the roofline estimate."""
    machine, settings = report["machine"], report["settings"]
    lines = [
        f"# Benchmark: {report.get('model') or os.path.basename(report['export_dir'])}",
        "",
        f"- date: {report['date_utc']}",
        f"- CPU: {machine['cpu_model']} ({machine['logical_cpus']} logical CPUs), threads: {machine['threads']}, "
        f"1-min load average after the run: {machine['load_average_1min_at_end']}",
        f"- latency: batch 1, median and p90 of {settings['runs']} runs after {settings['warmup']} warm-up runs; "
        f"throughput: images/s at batch {settings['batch']}",
        f"- accuracy and top-1 agreement with the reference on: {report['data']}",
        f"- speed-up = reference median latency / artifact median latency; reference: {report['reference']} "
        "(Keras, run as a traced tf.function)",
    ]
    if report.get("accuracy_note"):
        lines.append(f"- note: {report['accuracy_note']}")
    if report.get("export"):
        gates = "all passed" if report["export"]["parity_passed"] else "not all passed (see the agreement column)"
        lines.append(f"- exported on the fly by export.export_model in {report['export']['seconds']:.0f} s "
                     f"(temporary dir, deleted); parity gates: {gates}")
    return "\n".join(lines + ["", markdown_table(report["rows"]), "", roofline_line(report), ""])


LABEL_OFFSETS = ((8, 8), (8, -22), (-70, 8), (-70, -22))  # cycled so that nearby points' labels do not collide


def label_some_minor_ticks(value, _position=None):
    """Tick label for log axes: values with leading digit 2, 3, 5 or 7 (majors label the powers of 10)."""
    leading = f"{value:.0e}"[0]
    return f"{value:g}" if leading in "2357" else ""


def render_plot(report):
    """bench.png bytes: median latency vs file size (log-log), one labelled point per artifact with its accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    figure, axes = plt.subplots(figsize=(8, 5), dpi=100)
    for index, row in enumerate(report["rows"]):
        size_mb, latency = row["size_bytes"] / 1e6, row["latency_median_ms"]
        is_reference = row["name"] == REFERENCE_NAME
        points = axes.scatter([size_mb], [latency], s=140 if is_reference else 70, marker="*" if is_reference else "o")
        quality = row["accuracy"] if row["accuracy"] is not None else row["top1_agreement"]
        what = "acc" if row["accuracy"] is not None else "agree"
        label = f"{row['format']} {row['precision']}\n{what} {format_fraction(quality)}"
        axes.annotate(label, (size_mb, latency), textcoords="offset points", fontsize=8,
                      xytext=LABEL_OFFSETS[index % len(LABEL_OFFSETS)], color=points.get_facecolor()[0])
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(FuncFormatter(label_some_minor_ticks))
    axes.set_xlabel("file size (MB, 10^6 bytes)")
    axes.set_ylabel("median latency, batch 1 (ms)")
    axes.set_title(f"{report.get('model') or 'export'}: latency vs size, {report['machine']['threads']} thread(s), "
                   f"{report['machine']['cpu_model']}, {report['date_utc']}", fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.3, y=0.3)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def json_ready(report):
    """The report as JSON text (numpy scalars turned into Python numbers)."""
    return json.dumps(report, indent=2, default=lambda value: value.item() if hasattr(value, "item") else str(value))


def write_outputs(report, output_dir):
    """Write bench.json, bench.md and bench.png into `output_dir`: all rendered first, then temp file + rename."""
    contents = {"bench.json": json_ready(report).encode(), "bench.md": render_markdown(report).encode(),
                "bench.png": render_plot(report)}
    for name, content in contents.items():
        write_bytes(os.path.join(output_dir, name), content)


# ------------------------------------------------------------------------------------- a model exported on the fly
MODEL_MODE_FORMATS = ("keras", "tflite", "onnx")
MODEL_MODE_PRECISIONS = ("fp32", "int8")
MODEL_MODE_SAMPLES = 64


def looks_like_model(target):
    """True for a `.keras` path or a registered model name; False for anything path-like (an export dir)."""
    target = os.fspath(target)
    if target.endswith(".keras"):
        return True
    if os.path.exists(target) or os.sep in target:
        return False
    from reszoo.models.registry import list_models  # imports Keras: only for bare names

    return target in list_models()
MODEL_MODE_CALIBRATION = 100
RANDOM_INIT_SEED = 0
MODEL_MODE_EXPORT_LATENCY_RUNS = 3  # the export's own parity latency; bench measures latency properly afterwards


def model_to_export(target, input_size):
    """(model or .keras path, labels_meaningful, note) for `bench_model`; random-init weights for a zoo name."""
    from reszoo.models.registry import create_model, get_entry

    if str(target).endswith(".keras"):
        if input_size:
            raise UserError("--input-size applies to zoo model names; a .keras file has its own input size")
        return target, True, None
    import keras

    entry = get_entry(target)
    size = input_size or entry.default_input[0]
    keras.utils.set_random_seed(RANDOM_INIT_SEED)  # the same random weights in every run, so runs compare
    model = create_model(target, input_shape=(size, size, entry.default_input[2]), num_classes=entry.default_classes)
    note = (f"{target} has random-init weights (seed {RANDOM_INIT_SEED}, {entry.default_classes} classes), so "
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
    fix_tensorflow_threads(threads)
    model, labels_meaningful, note = model_to_export(target, input_size)
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
