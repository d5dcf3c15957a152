"""`export_model`: one call from a Keras model (or .keras file, or SavedModel dir) to verified edge artifacts.

Steps: plan the (format, precision) pairs -> load the model and its preprocessing/labels -> load data, split
it (calibrate on the train part, verify on the held-out part) -> optional prune/cluster/QAT -> trace ONE
SavedModel -> convert every artifact -> run each in its own runtime against the reference -> optional edge
target checks -> manifest.json, report.json, report.md. Everything is written into a temporary sibling dir
that is renamed to `output_dir` at the end, so a failure leaves no partial output.

Example:
    >>> result = export_model("saved_models/resnet20_digits.keras", formats=["tflite"],
    ...                       precisions=["fp32", "int8"], data="digits", output_dir="exports/r20")  # doctest: +SKIP
    >>> result.passed, [a["file"] for a in result.artifacts]  # doctest: +SKIP
    (True, ['resnet20_digits_fp32.tflite', 'resnet20_digits_int8.tflite'])
"""
import dataclasses
import os
import shutil
import sys
import time

import numpy as np

from export import formats as format_table
from export.core.files import check_output_target, current_umask, staged_dir
from export.core.errors import UserError

MIN_CALIBRATION_SAMPLES = 100
OPTIMIZATION_KEYS = ("prune", "prune_structure", "qat", "cluster")
TARGET_PRECISIONS = {"edgetpu": ("int8",)}  # integer-only accelerators: check only full-int8 artifacts


@dataclasses.dataclass
class ExportResult:
    """What `export_model` produced: the dir, manifest artifact entries (with parity), report, pass/fail."""

    output_dir: str
    artifacts: list
    report: dict
    manifest: dict
    passed: bool


@dataclasses.dataclass
class Source:
    """The model to export, with what travels with it."""

    model: object  # Keras-3 or tf_keras model; None for a SavedModel source
    saved_model_dir: str | None
    name: str
    path: str | None
    metadata: dict
    input_shape: tuple


def _optimizing(options):
    return any((options or {}).get(key) for key in OPTIMIZATION_KEYS)


def _stderr(message):
    print(message, file=sys.stderr)


def _load_source(model_or_path, model_name=None):
    if not isinstance(model_or_path, (str, os.PathLike)):
        return Source(model_or_path, None, model_name or model_or_path.name, None, {},
                      tuple(model_or_path.input_shape[1:]))
    path = os.fspath(model_or_path)
    if path.endswith(".keras"):
        from export.core.metadata import load_model

        model, metadata = load_model(path)
        name = model_name or os.path.basename(path)[: -len(".keras")]
        return Source(model, None, name, os.path.abspath(path), metadata, tuple(model.input_shape[1:]))
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        from export.savedmodel import signature_io

        _, shape, _ = signature_io(path)
        name = model_name or os.path.basename(os.path.normpath(path))
        return Source(None, path, name, os.path.abspath(path), {}, tuple(shape[1:]))
    raise UserError(f"model {path!r} is neither a .keras file nor a SavedModel dir (with saved_model.pb)")


def _check_request(pairs, source, options, data, int8_io, target, output_dir, force):
    """Refuse impossible combinations before any heavy work (UserError, nothing written)."""
    names = {(fmt.name, p) for fmt, p in pairs}
    if _optimizing(options):
        if data is None:
            raise UserError("--prune/--qat/--cluster need --data: they fine-tune on labeled images")
        if source.model is None:
            raise UserError("--prune/--qat/--cluster need a Keras model, not a SavedModel dir")
        if ("keras", "fp32") in names:
            raise UserError("--format keras cannot hold an optimized (tf_keras) model; use saved_model/tflite/onnx")
        if options.get("qat") and any(p != "int8" for fmt, p in pairs if fmt.name in ("tflite", "onnx")):
            raise UserError("--qat produces int8 artifacts; allowed precisions with --qat: int8")
    if source.model is None and ("keras", "fp32") in names:
        raise UserError("--format keras needs a Keras model; the source is a SavedModel dir")
    if int8_io and ("tflite", "int8") not in names:
        raise UserError("--int8-io applies to TFLite int8; add --format tflite --precision int8")
    wanted = TARGET_PRECISIONS.get(target)
    if wanted and not any(fmt.name == "tflite" and p in wanted for fmt, p in pairs):
        raise UserError(f"--target {target} checks TFLite {'/'.join(wanted)} artifacts; add --precision int8")
    if target and not any(fmt.name == "tflite" for fmt, _ in pairs):
        raise UserError(f"--target {target} checks TFLite files; add --format tflite")
    check_output_target(output_dir, force, _inputs(source, data))


def _inputs(source, data):
    """What --output must never hold: {"the input model": path, "the --data path": path}."""
    return {"the input model": source.path, "the --data path": data}


def _spec_and_labels(source, notify):
    from export.data.preprocess import check_spec, default_spec_for_input

    spec = source.metadata.get("preprocessing")
    if spec is None:
        spec = default_spec_for_input(source.input_shape)
        notify(f"note: model has no recorded preprocessing; using pixels/255 at {spec['input_size']}")
    return check_spec(spec), source.metadata.get("labels")


def _load_data(data, source, spec, calibration_samples, verify_samples, notify):
    from export.data import sources as datasets
    from export.data.preprocess import normalize

    chosen = data or (source.metadata.get("data") or {}).get("source") or "digits"
    if data is None:
        notify(f"note: no --data given; calibrating and verifying on {chosen!r}")
    train, held_out = datasets.split(datasets.load(chosen, tuple(spec["input_size"]), spec["channels"],
                                                   class_names=source.metadata.get("labels")))
    if len(train.x) == 0 or len(held_out.x) == 0:
        raise UserError(f"data {chosen!r} is too small to split into calibration and verification parts")
    order = np.random.default_rng(0).permutation(len(train.x))
    calibration = train.take(np.sort(order[:calibration_samples]))
    if len(calibration.x) < MIN_CALIBRATION_SAMPLES:
        notify(f"warning: only {len(calibration.x)} calibration samples (< {MIN_CALIBRATION_SAMPLES}); "
               "int8 ranges may be poor")
    if verify_samples:
        held_out = held_out.take(np.arange(min(verify_samples, len(held_out.x))))
    return {"source": chosen, "train": train, "held_out": held_out, "spec": spec,
            "x_calibration": normalize(calibration.x, spec).astype("float32"),
            "x_verify": normalize(held_out.x, spec).astype("float32"), "y_verify": held_out.y}


def _reference_runner(source, model):
    from export.runtimes import KerasRunner, SavedModelRunner

    return KerasRunner.from_model(model) if model is not None else SavedModelRunner(source.saved_model_dir)


class _Builder:
    """Converts one (format, precision) pair into a file inside the export dir (a table of methods)."""

    def __init__(self, root, work, name, model, saved_model_dir, calibration, int8_io, keras_metadata, qat):
        self.root, self.work, self.name, self.model = root, work, name, model
        self.saved_model_dir, self.calibration, self.int8_io = saved_model_dir, calibration, int8_io
        self.keras_metadata, self.qat, self._onnx_fp32 = keras_metadata, qat, None

    def build(self, fmt, precision):
        file = fmt.file_name(self.name, precision)
        getattr(self, f"_{fmt.name}")(os.path.join(self.root, file), precision)
        return file

    def _keras(self, path, precision):
        from export.core.metadata import save_model

        save_model(self.model, path, self.keras_metadata)
        os.chmod(path, 0o666 & ~current_umask())  # save_model's temp file is private; artifacts are not

    def _saved_model(self, path, precision):
        shutil.copytree(self.saved_model_dir, path)

    def _tflite(self, path, precision):
        from export.converters import tflite

        calibration = self.calibration if precision in tflite.CALIBRATED else None
        with open(path, "wb") as handle:
            handle.write(tflite.convert(self.saved_model_dir, precision, calibration, self.int8_io))

    def _onnx_float(self):
        from export.converters import onnx

        if self._onnx_fp32 is None:
            self._onnx_fp32 = onnx.to_onnx(self.saved_model_dir, os.path.join(self.work, "model_fp32.onnx"))
        return self._onnx_fp32

    def _onnx(self, path, precision):
        from export.converters import onnx

        if precision == "fp32" or (self.qat and precision == "int8"):  # a QAT graph already carries QDQ
            shutil.copyfile(self._onnx_float(), path)
        elif precision == "int8":
            onnx.quantize_int8(self._onnx_float(), path, self.calibration)
        else:
            onnx.quantize_dynamic(self._onnx_float(), path)


def _onnx_card(fmt, precision, common):
    return {"reszoo_manifest": {"format": fmt.name, "precision": precision, **common,
                                "note": "sha256 of this file is in the export dir's manifest.json"}}


def _reference_entry(source, pairs, model):
    """Where `reszoo verify` finds the parity reference later."""
    from export.savedmodel import is_tf_keras_model

    names = {fmt.name for fmt, _ in pairs}
    if "keras" in names:
        return {"file": format_table.FORMATS["keras"].file_name(source.name, "fp32"), "format": "keras"}
    if model is source.model and source.path:
        return {"path": source.path, "format": "keras" if source.model is not None else "saved_model"}
    if model is not None and not is_tf_keras_model(model):  # an in-memory Keras model: keep it as .keras
        return {"file": format_table.FORMATS["keras"].file_name(source.name, "fp32"), "format": "keras"}
    return {"file": "saved_model", "format": "saved_model"}


def _ensure_reference_pair(pairs, source, model, notify):
    """Add the keras (or saved_model) artifact when the reference exists nowhere else."""
    reference = _reference_entry(source, pairs, model)
    present = {fmt.name for fmt, _ in pairs}
    if reference.get("file") and reference["format"] not in present:
        notify(f"note: adding the {reference['format']} artifact as the parity reference for `reszoo verify` "
               "(the converted model exists only in memory)")
        pairs = [(format_table.FORMATS[reference["format"]], "fp32")] + list(pairs)
    return pairs, reference


def export_model(model_or_path, formats=None, precisions=None, all_formats=False, data=None, output_dir=None,
                 force=False, int8_io=False, dynamic_batch=False, calibration_samples=300, gates=None, target=None,
                 max_size=None, optimizations=None, threads=None, verify_samples=None, latency_runs=30,
                 model_name=None, show_progress=True, notify=_stderr):
    """Export `model_or_path` to the requested formats/precisions in `output_dir`, verify parity of each.

    model_or_path: a Keras-3 model, a `.keras` path (its metadata gives preprocessing and labels), or a
    SavedModel dir. data: "digits" | class-folder dir | .npz (default: the model's recorded data source, else
    digits). optimizations: {"prune", "prune_structure", "qat", "cluster", "finetune_epochs"} (need `data`).
    gates: overrides of `export.verify.DEFAULT_GATES`. target/max_size: TFLite edge checks.
    Returns ExportResult; `passed` is False when an artifact failed its gate or a target check.
    """
    from export.report import Steps

    started = time.perf_counter()
    pairs = format_table.plan(formats, precisions, all_formats)
    source = _load_source(model_or_path, model_name)
    output_dir = os.fspath(output_dir or os.path.join("exports", source.name))
    options = dict(optimizations or {})
    if max_size and not target:
        target = "generic"
    _check_request(pairs, source, options, data, int8_io, target, output_dir, force)
    spec, labels = _spec_and_labels(source, notify)
    loaded = _load_data(data, source, spec, calibration_samples, verify_samples, notify)
    labels = labels or loaded["train"].class_names
    pairs, reference_entry = _ensure_reference_pair(pairs, source, source.model if not _optimizing(options)
                                                    else None, notify)
    with staged_dir(output_dir, force, _inputs(source, data)) as tmp:  # swapped in atomically on success
        with Steps(total=2 * len(pairs) + 3, enabled=show_progress) as steps:
            result = _export_into(tmp, steps, source, pairs, loaded, spec, labels, options, reference_entry,
                                  int8_io, dynamic_batch, gates, target, max_size, threads, latency_runs, notify,
                                  started, output_dir)
    result.output_dir = output_dir
    return result


def _export_into(root, steps, source, pairs, loaded, spec, labels, options, reference_entry, int8_io,
                 dynamic_batch, gates, target, max_size, threads, latency_runs, notify, started, output_dir):
    from export.converters import onnx as onnx_converter
    from export.manifest import MANIFEST_FILE, SCHEMA_VERSION, artifact_entry, sha256_of, versions, write_json
    from export.report import build_report, write_reports
    from export.runtimes import load_runner
    from export.savedmodel import to_saved_model
    from export.verify import merge_gates, verify_runner

    gates = merge_gates(gates)
    work = os.path.join(root, ".work")
    os.makedirs(work)
    model, optimization_report = source.model, {}
    with steps.step("optimize" if _optimizing(options) else "prepare"):
        if _optimizing(options):
            model, optimization_report = _optimize(model, options, loaded, steps)
    with steps.step("trace SavedModel"):
        saved_model_dir = source.saved_model_dir or to_saved_model(
            model, os.path.join(work, "saved_model"), dynamic_batch)["path"]
    x, y = loaded["x_verify"], loaded["y_verify"]
    with steps.step("reference predictions"):
        reference_runner = _reference_runner(source, model)
        reference_outputs = reference_runner.predict(x)
        reference = _reference_facts(reference_runner, reference_outputs, x, y, latency_runs, source, model)
    source_model = {"name": source.name, "path": source.path,
                    "sha256": sha256_of(source.path) if source.path else None}
    common = {"preprocessing": spec, "labels": labels, "source_model": source_model, "versions": versions()}
    data_facts = {"source": loaded["train"].source, "held_out_fraction": 0.2, "split_seed": 0,
                  "calibration_samples": int(len(loaded["x_calibration"])), "verification_samples": int(len(x))}
    keras_metadata = {**source.metadata, "model_name": source.name, "preprocessing": spec, "labels": labels,
                      "data": {**(source.metadata.get("data") or {}), "source": loaded["train"].source}}
    builder = _Builder(root, work, source.name, model, saved_model_dir, loaded["x_calibration"], int8_io,
                       keras_metadata, bool(options.get("qat")))
    artifacts = []
    for fmt, precision in pairs:
        with steps.step(f"convert {fmt.name} {precision}"):
            file = builder.build(fmt, precision)
            if fmt.name == "onnx":
                onnx_converter.embed_metadata(os.path.join(root, file), _onnx_card(fmt, precision, common))
        with steps.step(f"verify {file}"):
            runner = load_runner(os.path.join(root, file), fmt.name, threads)
            parity = verify_runner(runner, precision, x, reference_outputs, y, gates, latency_runs)
            artifacts.append(artifact_entry(root, file, fmt.name, precision, runner.inputs, runner.outputs, parity))
    target_checks = _target_checks(root, artifacts, target, max_size)
    shutil.rmtree(work)
    passed = all(a["parity"]["passed"] for a in artifacts) and all(c["passed"] for c in target_checks.values())
    manifest = {"schema": SCHEMA_VERSION, "artifacts": artifacts, "reference": reference_entry, **common,
                "data": data_facts, "options": {"int8_io": int8_io, "dynamic_batch": dynamic_batch,
                                                "gates": gates, "target": target, "max_size": max_size},
                "optimizations": optimization_report, "target_checks": target_checks}
    write_json(os.path.join(root, MANIFEST_FILE), manifest)
    report = build_report(manifest, reference, passed, time.perf_counter() - started,
                          notes=[f"output dir: {output_dir}"])
    write_reports(root, report)
    return ExportResult(output_dir, artifacts, report, manifest, passed)


def _reference_facts(runner, outputs, x, y, latency_runs, source, model):
    from export.verify import labels_usable

    latencies = runner.latency_ms(x[:1], runs=latency_runs) if latency_runs else []
    facts = {"description": f"{source.name} ({'optimized tf_keras' if model is not source.model else 'source'} "
                            f"model in {'TensorFlow' if model is None else 'Keras'})",
             "samples": int(len(x)), "latency_ms_median": float(np.median(latencies)) if latencies else None}
    if labels_usable(y, outputs):
        facts["accuracy"] = float(np.mean(outputs.argmax(-1) == y))
    return facts


def _optimize(model, options, loaded, steps):
    from export.optimize import apply
    from export.runtimes import KerasRunner
    from export.verify import labels_usable

    from export.data.preprocess import normalize

    x_train = normalize(loaded["train"].x, loaded["spec"]).astype("float32")  # only optimizations need it all
    optimized, report = apply(model, options, (x_train, loaded["train"].y), steps.progress)
    x, y = loaded["x_verify"], loaded["y_verify"]
    before = KerasRunner.from_model(model).predict(x)
    if labels_usable(y, before):
        after = KerasRunner.from_model(optimized).predict(x)
        report["held_out_accuracy_before"] = float(np.mean(before.argmax(-1) == y))
        report["held_out_accuracy_after"] = float(np.mean(after.argmax(-1) == y))
    return optimized, report


def _target_checks(root, artifacts, target, max_size):
    if not target:
        return {}
    from export.targets import check_tflite

    wanted = TARGET_PRECISIONS.get(target)
    return {a["file"]: check_tflite(os.path.join(root, a["file"]), target, max_size) for a in artifacts
            if a["format"] == "tflite" and (wanted is None or a["precision"] in wanted)}
