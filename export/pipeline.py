"""`export_model`: one call from a Keras model (or .keras file, or SavedModel dir) to verified edge artifacts.

Steps: the `ExportRequest` (planned and validated once) -> load the model and its preprocessing/labels ->
load data, split it (calibrate on the train part, verify on the held-out part) -> optional prune/cluster/QAT
-> trace ONE SavedModel -> reference outputs and the reference's own float noise -> convert every row of
the plan with its converter (`export.formats.convert`) and run it in its own runtime against the reference
-> optional edge target checks -> manifest.json, report.json, report.md. Everything is written into a
temporary sibling dir that is renamed to `output_dir` at the end, so a failure leaves no partial output.

Example:
    >>> result = export_model("saved_models/resnet20_digits.keras", formats=["tflite"],
    ...                       precisions=["fp32", "int8"], data="digits", output_dir="exports/r20")  # doctest: +SKIP
    >>> result.passed, [a["file"] for a in result.artifacts]  # doctest: +SKIP
    (True, ['resnet20_digits_fp32.tflite', 'resnet20_digits_int8.tflite'])
    >>> request = ExportRequest.build(formats=["onnx"], data="digits", output_dir="exports/r20")
    >>> export_model("saved_models/resnet20_digits.keras", request)  # the same, from a request  # doctest: +SKIP
"""
import dataclasses
import os
import shutil
import sys
import time

import numpy as np

from export import formats as format_table
from export import raw_input, slow_kernels
from export.core.files import check_output_target, remove_created, staged_dir
from export.core.errors import UserError
from export.request import ExportRequest

MIN_CALIBRATION_SAMPLES = 100
# export_model's positional parameters after the model, from before ExportRequest (still accepted)
POSITIONAL_OPTIONS = ("formats", "precisions", "all_formats", "data", "output_dir", "force", "int8_io",
                      "dynamic_batch", "calibration_samples", "gates", "target", "max_size", "optimizations",
                      "threads", "verify_samples", "latency_runs", "model_name")


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


@dataclasses.dataclass
class Run:
    """What the steps of one export share: the request, the source, its data, and where output goes."""

    request: ExportRequest
    source: Source
    data: dict  # `_load_data`: source, train, held_out, spec, x_calibration, x_verify, y_verify
    labels: list | None
    variants: tuple  # the request's rows, plus the reference's artifact when it exists nowhere else
    reference_entry: dict
    output_dir: str
    notify: object
    started: float
    root: str | None = None  # the staged dir being written
    steps: object = None  # export.report.Steps


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
        from export.serving_graph import signature_io

        _, shape, _ = signature_io(path)
        name = model_name or os.path.basename(os.path.normpath(path))
        return Source(None, path, name, os.path.abspath(path), {}, tuple(shape[1:]))
    raise UserError(f"model {path!r} is neither a .keras file nor a SavedModel dir (with saved_model.pb)")


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


def _load_data(request, source, spec, notify):
    from export.data.splits import first, native_load_size, prepare, split_for_spec

    chosen = request.data or (source.metadata.get("data") or {}).get("source") or "digits"
    if request.data is None:
        notify(f"note: no --data given; calibrating and verifying on {chosen!r}")
    train, held_out = split_for_spec(chosen, spec, class_names=source.metadata.get("labels"),
                                     load_size=native_load_size(chosen, spec))
    if len(train.x) == 0 or len(held_out.x) == 0:
        raise UserError(f"data {chosen!r} is too small to split into calibration and verification parts")
    order = np.random.default_rng(0).permutation(len(train.x))
    calibration = train.take(np.sort(order[:request.calibration_samples]))
    if len(calibration.x) < MIN_CALIBRATION_SAMPLES:
        notify(f"warning: only {len(calibration.x)} calibration samples (< {MIN_CALIBRATION_SAMPLES}); "
               "int8 ranges may be poor")
    held_out = first(held_out, request.verify_samples)
    data = {"source": chosen, "train": train, "held_out": held_out, "spec": spec,
            "x_calibration": prepare(calibration, spec), "x_verify": prepare(held_out, spec), "y_verify": held_out.y}
    return raw_input.with_pixels(data, calibration) if request.raw_input else data


def _reference_runner(source, model):
    from export.runtimes import KerasRunner, SavedModelRunner

    return KerasRunner.from_model(model) if model is not None else SavedModelRunner(source.saved_model_dir)


def _onnx_card(precision, common, onnx_target=None, qat=False):
    from export.onnx_targets import artifact_facts

    target = artifact_facts(onnx_target, precision, qat) if onnx_target else None
    return {"reszoo_manifest": {"format": "onnx", "precision": precision, **common,
                                **({"onnx_target": target} if target else {}),
                                "note": "sha256 of this file is in the export dir's manifest.json"}}


def _reference_entry(source, variants, model):
    """Where `reszoo verify` finds the parity reference later."""
    from export.serving_graph import is_tf_keras_model

    keras_file = {"file": format_table.FORMATS["keras"].file_name(source.name, "fp32"), "format": "keras"}
    if "keras" in {v.format for v in variants}:
        return keras_file
    if model is source.model and source.path:
        return {"path": source.path, "format": "keras" if source.model is not None else "saved_model"}
    if model is not None and not is_tf_keras_model(model):  # an in-memory Keras model: keep it as .keras
        return keras_file
    return {"file": "saved_model", "format": "saved_model"}


def _ensure_reference_variant(variants, source, model, notify):
    """Add the keras (or saved_model) artifact when the reference exists nowhere else."""
    reference = _reference_entry(source, variants, model)
    if reference.get("file") and reference["format"] not in {v.format for v in variants}:
        notify(f"note: adding the {reference['format']} artifact as the parity reference for `reszoo verify` "
               "(the converted model exists only in memory)")
        variants = (format_table.variant(reference["format"], "fp32"),) + tuple(variants)
    return tuple(variants), reference


def _request(positional, request, options):
    """The ExportRequest of an export_model call: given, or built from its keyword (or old positional) options."""
    if isinstance(request, ExportRequest):
        if positional or options:
            raise TypeError("export_model: pass either an ExportRequest or options, not both")
        return request
    positional = (request, *positional) if request is not None else positional
    if len(positional) > len(POSITIONAL_OPTIONS):
        raise TypeError(f"export_model takes at most {len(POSITIONAL_OPTIONS) + 1} positional arguments")
    named = dict(zip(POSITIONAL_OPTIONS, positional))
    duplicated = set(named) & set(options)
    if duplicated:
        raise TypeError(f"export_model got multiple values for {', '.join(sorted(duplicated))}")
    return ExportRequest.build(**named, **options)


def export_model(model_or_path, request=None, *positional, show_progress=True, notify=_stderr, **options):
    """Export `model_or_path` as `request` asks (an ExportRequest, or its options as keywords), verify each file.

    model_or_path: a Keras-3 model, a `.keras` path (its metadata gives preprocessing and labels), or a
    SavedModel dir. Options (see `ExportRequest.build`): formats, precisions, all_formats, data ("digits" |
    class-folder dir | .npz; default: the model's recorded data source, else digits), output_dir, force,
    int8_io, dynamic_batch, calibration_samples, gates (overrides of `export.gates.DEFAULT_GATES`), target,
    max_size, optimizations ({"prune", "prune_structure", "qat", "cluster", "finetune_epochs"}, need data),
    threads, verify_samples, latency_runs, model_name, raw_input (uint8 pixel inputs with the preprocessing in
    the graph, `export.raw_input`), calibration (minmax | percentile | entropy | mse, `export.calibration`),
    check_cpus (CPU kinds TFLite/ONNX files are also verified on, `export.cpus`).
    Returns ExportResult; `passed` is False when an artifact failed its gate or a target check.

    Example:
        >>> export_model(model, formats=["tflite"], data="digits", output_dir="exports/m")  # doctest: +SKIP
    """
    from export.core.memory import peak_rss_mb
    from export.report import Steps

    request = _request(positional, request, options)
    run = _prepare_run(model_or_path, request, notify)
    with staged_dir(run.output_dir, request.force, _inputs(run.source, request.data)) as root:
        with Steps(total=_step_count(request, run.variants), enabled=show_progress) as steps:
            run.root, run.steps = root, steps  # swapped in atomically on success
            steps.seconds["load model and data"] = time.perf_counter() - run.started
            steps.peaks["load model and data"] = peak_rss_mb()
            result = _export_into(run)
    result.output_dir = run.output_dir
    return result


def _step_count(request, variants):
    """Steps of the progress bar: convert and verify per row, verify on the other CPUs per row that runs there
    (`--check-cpu`: TFLite/ONNX), and three for the run's shared steps."""
    from export.cpus.verify import checkable

    on_cpus = sum(checkable(row.format) for row in variants) if request.check_cpus else 0
    return 2 * len(variants) + on_cpus + 3


def _prepare_run(model_or_path, request, notify):
    """Load the source and its data, check what needs the source, and decide the rows and the reference."""
    started = time.perf_counter()
    source = _load_source(model_or_path, request.model_name)
    request.check_source(source.model is not None)
    output_dir = request.output_dir or os.path.join("exports", source.name)
    check_output_target(output_dir, request.force, _inputs(source, request.data))
    spec, labels = _spec_and_labels(source, notify)
    data = _load_data(request, source, spec, notify)
    reference_model = None if request.optimizing else source.model
    variants, reference_entry = _ensure_reference_variant(request.variants, source, reference_model, notify)
    _note_onnx_target(request, notify)
    return Run(request, source, data, labels or data["train"].class_names, variants, reference_entry,
               output_dir, notify, started)


def _note_onnx_target(request, notify):
    """One note when an ONNX int8 file is written for a CPU this host cannot stand in for (export.onnx_targets)."""
    from export.onnx_targets import host_note

    note = host_note(request.onnx_target) if ("onnx", "int8") in request.pairs else None
    if note:
        notify(note)


def _export_into(run):
    """Optimize, trace, convert and verify every row, check targets, write manifest and reports."""
    from export.converters import ConvertContext

    work = os.path.join(run.root, ".work")
    os.makedirs(work)
    with run.steps.step("optimize" if run.request.optimizing else "prepare"):
        model, optimization_report, original_hits = _optimize(run, work) if run.request.optimizing else (
            run.source.model, {}, None)
    traced_model, equalization = _equalized(run, model)
    with run.steps.step("trace SavedModel"):
        saved_model_dir = _trace(run, traced_model, work)
        baked = raw_input.bake(saved_model_dir, run.data["spec"], work) if run.request.raw_input else None
    with run.steps.step("reference predictions"):
        reference = _reference(run, model)
    qat = bool(optimization_report.get("qat"))
    context = ConvertContext(baked.saved_model_dir if baked else saved_model_dir, work, model,
                             run.data["x_calibration"], run.request.int8_io, qat, _keras_metadata(run),
                             raw_input=baked, calibration_method=run.request.calibration,
                             onnx_target=run.request.onnx_target, small_convs_float=_small_convs_float(run, qat))
    common = _common_facts(run)
    quantization = {"equalization": equalization, "fallback": _fallback_policy(run), "reports": []}
    artifacts = [_convert_and_verify(run, row, context, reference, common, quantization) for row in run.variants]
    slow_kernels.annotate(artifacts)
    target_checks = _target_checks(run.root, artifacts, run.request.target, run.request.max_size)
    _write_quant_report(run, quantization.pop("reports"))
    remove_created(work)
    return _write_results(run, artifacts, target_checks, reference["facts"], optimization_report, common,
                          quantization, original_hits)


QUANTIZED = ("int8", "int16x8", "dynamic")  # precisions whose rows get a per-layer quantization report


def _equalized(run, model):
    """(model to trace, record): cross-layer equalization (`export.optimize.equalize`) of a PTQ model when
    quantized rows are planned; the reference and the .keras artifact stay the given model."""
    from export.optimize.equalize import equalize

    reason = _equalization_skipped(run, model)
    if reason:
        return model, {"applied": False, "reason": reason}
    with run.steps.step("equalize"):
        equalized, record = equalize(model)
    return equalized, {"applied": True, "pairs": len(record["pairs"]), "sweeps": record["sweeps"],
                       "largest_scale": max((p["scale_max"] for p in record["pairs"]), default=1.0),
                       "smallest_scale": min((p["scale_min"] for p in record["pairs"]), default=1.0)}


def _equalization_skipped(run, model):
    """Why equalization does not run (None when it does)."""
    request = run.request
    reasons = ((not request.equalize, "--no-equalize"),
               (not any(v.precision in QUANTIZED for v in run.variants), "no quantized artifact planned"),
               (model is None, "a SavedModel source has no Keras layers to rescale"),
               (request.optimizing, "an optimized (pruned/clustered/QAT) model keeps its trained weights"))
    return next((reason for skipped, reason in reasons if skipped), None)


def _fallback_policy(run):
    from export.fallback import FULL_INT8_TARGETS, MAX_FLOAT_LAYERS

    if not run.request.fallback:
        return {"enabled": False, "reason": f"--target {run.request.target} must stay fully int8"
                if run.request.target in FULL_INT8_TARGETS else "--no-fallback"}
    return {"enabled": True, "max_float_layers": MAX_FLOAT_LAYERS}


def _small_convs_float(run, qat):
    """Whether TFLite int8 keeps its narrow first convolutions float (`export.converters.tflite.SMALL_CONV_REASON`):
    not when the file must be fully int8 (`--target edgetpu|micro`, `--int8-io`, a `--raw-input` file's pinned
    uint8 input, `export.converters.tflite_raw`) or carries QAT's ranges."""
    from export.fallback import FULL_INT8_TARGETS

    request = run.request
    return not (request.target in FULL_INT8_TARGETS or request.int8_io or request.raw_input or qat)


def _trace(run, model, work):
    from export.serving_graph import to_saved_model

    if run.source.saved_model_dir:
        return run.source.saved_model_dir
    return to_saved_model(model, os.path.join(work, "saved_model"), run.request.dynamic_batch)["path"]


def _reference(run, model):
    """The reference's outputs on the held-out part, its own float noise, and its facts for the report."""
    from export.outputs import reference_outputs
    from export.verify import reference_noise

    x, y = run.data["x_verify"], run.data["y_verify"]
    runner = _reference_runner(run.source, model)
    outputs = reference_outputs(runner, x, len(run.labels or []))  # an array, or Outputs for several
    noise = reference_noise(runner, x, outputs)
    facts = _reference_facts(runner, outputs, x, y, run.request.latency_runs, run.source, model)
    return {"outputs": outputs, "noise": noise, "facts": {**facts, "noise": noise}}


def _keras_metadata(run):
    """The metadata a .keras artifact carries."""
    source, data = run.source, run.data
    return {**source.metadata, "model_name": source.name, "preprocessing": data["spec"], "labels": run.labels,
            "data": {**(source.metadata.get("data") or {}), "source": data["train"].source}}


def _common_facts(run):
    """Facts shared by the manifest and every ONNX file's metadata."""
    from export.manifest import sha256_of, versions

    source = run.source
    source_model = {"name": source.name, "path": source.path,
                    "sha256": sha256_of(source.path) if source.path else None}
    return {"preprocessing": run.data["spec"], "labels": run.labels, "source_model": source_model,
            "versions": versions()}


def _convert_and_verify(run, row, context, reference, common, quantization):
    """Write one row's artifact with its converter, then its manifest entry with parity; a quantized row also
    gets its per-layer report and, when it fails its gate, the selective float fallback."""
    from export.manifest import artifact_entry

    file = row.file_name(run.source.name)
    path = os.path.join(run.root, file)
    contract = {"input": raw_input.input_contract(row.format, run.data["spec"])} if run.request.raw_input else {}
    card = (_onnx_card(row.precision, {**common, **contract}, run.request.onnx_target, context.qat)
            if row.format == "onnx" else None)
    with run.steps.step(f"convert {row.format} {row.precision}"):
        _convert(row, context, path, card)
    with run.steps.step(f"verify {file}"):
        runner, parity = _verified(run, row, path, reference)
    facts = _quantization_facts(run, row, context, path, parity, quantization, reference, card)
    if facts.get("fallback", {}).get("passed"):  # the fallback file replaced the plain one (see _fall_back)
        runner, parity = _verified(run, row, path, reference)
    verified_on = _verified_on_cpus(run, row, path, reference)
    if verified_on:
        from export.verify import with_cpu_results

        parity = with_cpu_results(parity, verified_on)
    entry = artifact_entry(run.root, file, row.format, row.precision, runner.inputs, runner.outputs, parity)
    if verified_on:
        entry["verified_on"] = verified_on
    if facts:
        entry["quantization"] = facts
    if card and card["reszoo_manifest"].get("onnx_target"):
        entry["onnx_target"] = dict(card["reszoo_manifest"]["onnx_target"])  # the card was written; not aliased
        if row.precision == "int8":
            from export.converters.onnx_passes import float_convs

            entry["onnx_target"]["float_convs"] = float_convs(path)
    if (row.format, row.precision) == ("tflite", "int8") and context.small_convs_float:
        from export.converters import tflite

        entry["small_convs_float"] = {"below_channels": tflite.SMALL_CONV_CHANNELS,
                                      "float_convs": tflite.float_convs(path), "reason": tflite.SMALL_CONV_REASON}
    if row.format == "micro":
        from export.converters.micro import manifest_facts

        entry["micro"] = manifest_facts(path)
    return {**entry, **contract}


def _convert(row, context, path, card=None):
    """The row's artifact at `path`; an ONNX file gets the manifest card in its metadata."""
    from export.converters import onnx as onnx_converter

    format_table.convert(row, context, path)
    if card is not None:
        onnx_converter.embed_metadata(path, card)


ROUND_TRIP_SAMPLES = 32  # held-out samples a .keras artifact (the reference model saved and reloaded) is checked on


def _verified(run, row, path, reference, latency_runs=None):
    """(runner, parity) of the artifact at `path` against the reference.

    A `.keras` artifact is the reference model itself saved and loaded back in the same runtime: a round trip
    checked on the first ROUND_TRIP_SAMPLES held-out samples (the reference already ran on all of them), with
    the reference's latency; every other artifact runs on every held-out sample.
    """
    from export.outputs import head
    from export.runtimes import load_runner
    from export.verify import verify_runner

    runner = load_runner(path, row.format, run.request.threads)
    x, outputs, y = raw_input.verification_input(run.data, row.format), reference["outputs"], run.data["y_verify"]
    round_trip = row.format == "keras"
    if round_trip:
        count, latency_runs = ROUND_TRIP_SAMPLES, 0
        x, outputs, y = x[:count], head(outputs, count), None if y is None else y[:count]
    latency_runs = run.request.latency_runs if latency_runs is None else latency_runs
    parity = verify_runner(runner, row.precision, x, outputs, y, run.request.gates, latency_runs,
                           noise=reference["noise"])
    if round_trip:
        parity["latency_ms_median"] = reference["facts"]["latency_ms_median"]
    return runner, parity


def _verified_on_cpus(run, row, path, reference):
    """{CPU kind: parity record} of the artifact on each `--check-cpu` kind (`export.cpus.verify`); {} when none
    was asked for or the format does not run outside TensorFlow."""
    from export.cpus.verify import checkable, checker

    if not (run.request.check_cpus and checkable(row.format)):
        return {}
    x = raw_input.verification_input(run.data, row.format)
    with run.steps.step(f"verify {os.path.basename(path)} on {', '.join(run.request.check_cpus)}"):
        return checker(run.request.check_cpus)(path, row.format, row.precision, x, reference["outputs"],
                                               run.data["y_verify"], run.request.gates, reference["noise"])


def _quantization_facts(run, row, context, path, parity, quantization, reference, card=None):
    """The artifact's per-layer report summary (and fallback) for its manifest entry; {} for other rows."""
    report = _layer_report(run, row, context, path)
    if report is None:
        return {}
    quantization["reports"].append(report)
    from export.fallback import applies
    from export.quantreport import worst_rows

    facts = {"output_sqnr_db": report["output"]["sqnr_db"],
             "worst_layers": [{"layer": r["layer"], "sqnr_db": r["sqnr_db"]} for r in worst_rows(report)]}

    if not parity["passed"] and quantization["fallback"]["enabled"] and applies(row, run.request.target,
                                                                                 context.qat):
        facts["fallback"] = report["fallback"] = _fall_back(run, row, context, path, report, reference, card)
    return facts


def _fall_back(run, row, context, path, report, reference, card=None):
    """Greedy float fallback (`export.fallback`): the first passing artifact is kept, else the plain one."""
    from export.fallback import fall_back

    plain = os.path.join(context.work_dir, "plain_" + os.path.basename(path))
    shutil.copyfile(path, plain)

    def attempt(float_nodes):
        with run.steps.step(f"fallback {os.path.basename(path)}: {len(float_nodes)} float nodes"):
            _convert(row, dataclasses.replace(context, float_nodes=float_nodes), path, card)
            return _verified(run, row, path, reference, latency_runs=0)[1]

    result = fall_back(plain, row.format, report, attempt)
    if not result["passed"]:
        shutil.copyfile(plain, path)
    return {"float_layers": result["float_layers"], "float_nodes": len(result["float_nodes"]),
            "attempts": result["attempts"], "passed": result["passed"],
            "kept": "with float layers" if result["passed"] else "plain int8 (no fallback passed its gate)"}


def _layer_report(run, row, context, path):
    """The per-layer report of a quantized artifact against the float file of the same graph, or None when
    the row is not quantized, is a QAT graph (no float reference), or takes raw pixels."""
    from export.quantreport import layer_report

    if row.precision not in QUANTIZED or context.qat or context.raw_input is not None:
        return None
    float_path = _float_file(row.format, context)
    layer_names = [layer.name for layer in context.model.layers] if context.model is not None else None
    with run.steps.step(f"quantization report {os.path.basename(path)}"):
        report = layer_report(float_path, _as_tflite(row, path, context), _REPORT_FORMATS[row.format],
                              run.data["x_calibration"], layer_names=layer_names)
    report["artifact"] = os.path.basename(path)
    return report


_REPORT_FORMATS = {"tflite": "tflite", "micro": "tflite", "onnx": "onnx"}


def _as_tflite(row, path, context):
    """A micro source's array as a .tflite file in the work dir; other artifacts as they are."""
    if row.format != "micro":
        return path
    from export.core.files import write_bytes
    from export.micro.source import read_array

    return write_bytes(os.path.join(context.work_dir, "micro_array.tflite"), read_array(path))


def _float_file(format_name, context):
    """The fp32 file of the traced graph in `format_name`'s family (written once per run)."""
    from export.converters import onnx as onnx_converter, tflite

    return {"onnx": onnx_converter.float_graph, "tflite": tflite.float_file}[_REPORT_FORMATS[format_name]](context)


def _write_quant_report(run, reports):
    from export.quantreport import write_quant_report

    if reports:
        with run.steps.step("quantization report files"):
            write_quant_report(run.root, reports)


def _write_results(run, artifacts, target_checks, reference_facts, optimization_report, common, quantization,
                   original_hits=None):
    """manifest.json, report.json and report.md; the ExportResult."""
    from export.manifest import MANIFEST_FILE, SCHEMA_VERSION, write_json
    from export.optimize.gate import against_original
    from export.report import build_report, write_reports

    request, data = run.request, run.data
    gate = optimization_report.get("gate") or {}
    against_original(artifacts, original_hits)
    passed = all(a["parity"]["passed"] for a in artifacts) and all(c["passed"] for c in target_checks.values())
    passed = passed and gate.get("passed", True)
    data_facts = {"source": data["train"].source, "held_out_fraction": 0.2, "split_seed": 0,
                  "calibration_samples": int(len(data["x_calibration"])),
                  "verification_samples": int(len(data["x_verify"]))}
    options = {"int8_io": request.int8_io, "dynamic_batch": request.dynamic_batch, "gates": request.gates,
               "target": request.target, "max_size": request.max_size, "raw_input": request.raw_input,
               "calibration": request.calibration, "onnx_target": request.onnx_target}
    manifest = {"schema": SCHEMA_VERSION, "artifacts": artifacts, "reference": run.reference_entry, **common,
                "data": data_facts, "options": options, "optimizations": optimization_report,
                "quantization": quantization, "target_checks": target_checks}
    write_json(os.path.join(run.root, MANIFEST_FILE), manifest)
    report = build_report(manifest, reference_facts, passed, time.perf_counter() - run.started,
                          notes=[f"output dir: {run.output_dir}"], step_seconds=run.steps.seconds,
                          step_peaks=run.steps.peaks)
    write_reports(run.root, report)
    return ExportResult(run.output_dir, artifacts, report, manifest, passed)


def _reference_facts(runner, outputs, x, y, latency_runs, source, model):
    from export.outputs import class_scores_of
    from export.gates import top1_accuracy

    outputs = class_scores_of(outputs)  # the class scores accuracy is measured on (None for features only)
    latencies = runner.latency_ms(x[:1], runs=latency_runs) if latency_runs else []
    facts = {"description": f"{source.name} ({'optimized tf_keras' if model is not source.model else 'source'} "
                            f"model in {'TensorFlow' if model is None else 'Keras'})",
             "samples": int(len(x)), "latency_ms_median": float(np.median(latencies)) if latencies else None}
    accuracy = None if outputs is None else top1_accuracy(y, outputs)
    return facts if accuracy is None else {**facts, "accuracy": accuracy}


def _optimize(run, work):
    """(optimized model, report, original hits) of the prune/cluster/QAT steps; report["gate"] compares every
    step's held-out accuracy with the ORIGINAL model's (`export.optimize.gate`), QAT only kept when not below
    PTQ; the hits (per held-out sample: the original's top-1 is its label, None without usable labels) let
    every artifact be compared with the original on the samples it was checked on."""
    from export.data.splits import prepare
    from export.optimize import apply
    from export.optimize.gate import DEFAULT_MAX_DROP, evaluate_gate
    from export.optimize.qat_choice import ptq_int8_accuracy

    model, data, request = run.source.model, run.data, run.request
    x_train = prepare(data["train"], data["spec"])  # only optimizations need all of it
    x, y = data["x_verify"], data["y_verify"]
    evaluate = _held_out_accuracy(x, y)
    ptq = (lambda pre_qat: ptq_int8_accuracy(pre_qat, data["x_calibration"], x, y, work)) if \
        request.optimizations.get("qat") else None
    optimized, report = apply(model, request.optimizations, (x_train, data["train"].y), run.steps.progress,
                              evaluate=evaluate, ptq_accuracy=ptq)
    original_hits = _held_out_hits(model, x, y)
    report["held_out_accuracy_before"] = None if original_hits is None else float(np.mean(original_hits))
    report["held_out_accuracy_after"] = evaluate(optimized)
    max_drop = DEFAULT_MAX_DROP if request.max_optimization_drop is None else request.max_optimization_drop
    report["gate"] = evaluate_gate(report["held_out_accuracy_before"], report["steps"], max_drop,
                                   request.optimizations, len(x_train))
    return optimized, report, original_hits


def _held_out_hits(model, x, y):
    """Per held-out sample, whether `model`'s top-1 is its label; None when the labels cannot score it."""
    from export.runtimes import KerasRunner
    from export.gates import labels_usable

    outputs = KerasRunner.from_model(model).predict(x)
    return (np.asarray(outputs).argmax(-1) == y) if labels_usable(y, outputs) else None


def _held_out_accuracy(x, y):
    """evaluate(model) -> accuracy of a Keras/tf_keras model on (x, y), None when labels cannot score it."""
    def evaluate(model):
        hits = _held_out_hits(model, x, y)
        return None if hits is None else float(np.mean(hits))

    return evaluate


def _target_checks(root, artifacts, target, max_size):
    """{file: check_tflite report} of every artifact `target_for` picks a target for."""
    from export.request import target_for
    from export.targets import check_tflite

    chosen = {a["file"]: target_for(a["format"], a["precision"], target) for a in artifacts}
    return {file: check_tflite(os.path.join(root, file), name, max_size) for file, name in chosen.items() if name}

