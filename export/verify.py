"""Parity of each artifact, run in its own runtime, against the reference model on the held-out split.

Metrics per artifact: max/mean absolute output error (and max error relative to the reference's output
range), top-1 agreement with the reference, accuracy and accuracy delta (points) when labels exist, and the
median batch-1 latency. Gates per precision (`DEFAULT_GATES`, overridable with `parse_gate`):

    fp32            max_rel_err <= 1e-4 (of the reference output range), top-1 agreement == 100 %
    fp16            top-1 agreement >= 99.5 %
    dynamic/int8/int16x8   top-1 agreement >= 98 % and accuracy drop <= 1 point

`verify_export_dir` re-verifies an export dir (sha256 of every artifact against manifest.json first).

Example:
    >>> import numpy as np
    >>> ref = np.array([[0.9, 0.1], [0.2, 0.8]]); out = ref + 1e-6
    >>> m = parity_metrics(ref, out, labels=np.array([0, 1]))
    >>> m["top1_agreement"], check_gate(m, "fp32", DEFAULT_GATES)
    (1.0, [])
"""
import copy
import os

import numpy as np

from export.core.errors import UserError

DEFAULT_GATES = {
    "fp32": {"max_rel_err": 1e-4, "min_agreement": 1.0},
    "fp16": {"min_agreement": 0.995},
    "dynamic": {"min_agreement": 0.98, "max_accuracy_drop": 1.0},
    "int8": {"min_agreement": 0.98, "max_accuracy_drop": 1.0},
    "int16x8": {"min_agreement": 0.98, "max_accuracy_drop": 1.0},
}
# gate key -> (metric name, comparison, description)
GATE_CHECKS = {
    "max_rel_err": ("max_rel_err", lambda value, limit: value <= limit, "max abs error / output range {v:.3g} > {l:g}"),
    "min_agreement": ("top1_agreement", lambda value, limit: value >= limit, "top-1 agreement {v:.2%} < {l:.2%}"),
    "max_accuracy_drop": ("accuracy_drop", lambda value, limit: value <= limit,
                          "accuracy drop {v:.2f} points > {l:g}"),
}
LATENCY_RUNS = 30
LATENCY_WARMUP = 5


def parse_gate(text):
    """Parse "PRECISION.KEY=VALUE" (e.g. "int8.min_agreement=0.95") into (precision, key, float value)."""
    try:
        name, value = text.split("=", 1)
        precision, key = name.split(".", 1)
        number = float(value)
    except ValueError:
        raise UserError(f"gate {text!r} is not PRECISION.KEY=VALUE (e.g. int8.min_agreement=0.95)") from None
    if precision not in DEFAULT_GATES:
        raise UserError(f"gate {text!r}: unknown precision {precision!r}; allowed: {', '.join(DEFAULT_GATES)}")
    if key not in GATE_CHECKS:
        raise UserError(f"gate {text!r}: unknown key {key!r}; allowed: {', '.join(GATE_CHECKS)}")
    return precision, key, number


def merge_gates(overrides=None):
    """DEFAULT_GATES updated by `overrides`: {precision: {key: value}} or a list of "PRECISION.KEY=VALUE"."""
    gates = copy.deepcopy(DEFAULT_GATES)
    if isinstance(overrides, (list, tuple)):
        for precision, key, value in map(parse_gate, overrides):
            gates[precision][key] = value
    else:
        for precision, values in (overrides or {}).items():
            for key, value in values.items():
                parse_gate(f"{precision}.{key}={value}")
                gates[precision][key] = float(value)
    return gates


def labels_usable(labels, reference):
    """True when integer labels index the model's output classes."""
    return labels is not None and reference.ndim == 2 and int(labels.max()) < reference.shape[-1]


def parity_metrics(reference, outputs, labels=None):
    """Output error, top-1 agreement, and (with labels) accuracy of `outputs` against `reference`."""
    reference = np.asarray(reference, dtype="float64").reshape(len(reference), -1)
    outputs = np.asarray(outputs, dtype="float64").reshape(len(outputs), -1)
    error = np.abs(outputs - reference)
    output_range = float(reference.max() - reference.min()) or 1.0
    metrics = {"samples": int(len(reference)), "max_abs_err": float(error.max()), "mean_abs_err": float(error.mean()),
               "output_range": output_range, "max_rel_err": float(error.max()) / output_range,
               "top1_agreement": float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))}
    if labels_usable(labels, reference):
        accuracy = float(np.mean(outputs.argmax(-1) == labels))
        reference_accuracy = float(np.mean(reference.argmax(-1) == labels))
        metrics.update(accuracy=accuracy, reference_accuracy=reference_accuracy,
                       accuracy_delta=100.0 * (accuracy - reference_accuracy),
                       accuracy_drop=max(0.0, 100.0 * (reference_accuracy - accuracy)))
    return metrics


def check_gate(metrics, precision, gates):
    """Reasons (one line each) why `metrics` fail the gate of `precision`; [] when it passes."""
    reasons = []
    for key, limit in gates.get(precision, {}).items():
        metric, passes, message = GATE_CHECKS[key]
        if metric in metrics and not passes(metrics[metric], limit):
            reasons.append(message.format(v=metrics[metric], l=limit))
    return reasons


def verify_runner(runner, precision, x, reference, labels=None, gates=None, latency_runs=LATENCY_RUNS,
                  latency_warmup=LATENCY_WARMUP):
    """Run `runner` on `x`, compare with `reference`, time batch-1 calls; returns the parity dict."""
    gates = gates or DEFAULT_GATES
    metrics = parity_metrics(reference, runner.predict(x), labels)
    latencies = runner.latency_ms(x[:1], runs=latency_runs, warmup=latency_warmup) if latency_runs else []
    metrics["latency_ms_median"] = float(np.median(latencies)) if latencies else None
    metrics["gate"] = dict(gates.get(precision, {}))
    metrics["failures"] = check_gate(metrics, precision, gates)
    metrics["passed"] = not metrics["failures"]
    return metrics


UNTRUSTED_FORMATS = {"saved_model": "SavedModel graphs can run arbitrary TF ops; pass --trust"}  # format -> why
# Runs without --trust: TFLite (LiteRT interpreter, no Flex delegate), ONNX (onnxruntime CPU, no custom-op
# libraries) and .keras (keras safe_mode=True: Lambda layers and pickled code are refused) are data, not code.


def reference_runner(export_dir, manifest, threads=None, trust=False):
    """Runner for the manifest's parity reference (a file in the dir, or the source model's path).

    The path is confined to the dir (`export.manifest.artifact_path`); a SavedModel reference is refused
    without `trust` (UserError), since loading and calling it runs whatever TF ops its graph holds.

    Example:
        >>> reference_runner("exports/resnet20_digits", manifest).predict(x)  # doctest: +SKIP
    """
    from export.manifest import artifact_path
    from export.runtimes import load_runner

    reference = manifest.get("reference") or {}
    fmt = reference.get("format", "keras")
    file = reference.get("file")
    path = artifact_path(export_dir, file, "reference.file") if file else reference.get("path")
    if not path or not os.path.exists(path):
        raise UserError(f"the parity reference of {os.fspath(export_dir)!r} ({path}) is not available; "
                        "export with --format keras to keep it in the dir")
    if fmt in UNTRUSTED_FORMATS and not trust:
        raise UserError(f"the parity reference {path} is a {fmt}, not run: {UNTRUSTED_FORMATS[fmt]}")
    return load_runner(path, fmt, threads)


def verification_split(manifest, data=None, samples=None):
    """(x preprocessed, y or None, source) of the held-out split the manifest's preprocessing expects."""
    from export.data import sources as datasets
    from export.data.preprocess import normalize

    spec = manifest["preprocessing"]
    source = data or (manifest.get("data") or {}).get("source")
    if not source:
        raise UserError("no verification data: pass --data (digits, a class-folder dir, or an .npz)")
    _, held_out = datasets.split(datasets.load(source, tuple(spec["input_size"]), spec["channels"],
                                               class_names=manifest.get("labels")))
    if samples:
        held_out = held_out.take(np.arange(min(samples, len(held_out.x))))
    return normalize(held_out.x, spec).astype("float32"), held_out.y, source


def not_run_reason(artifact, trust):
    """Why `verify` leaves `artifact` unrun (its sha256 is still checked), or None when it runs.

    Example:
        >>> not_run_reason({"format": "saved_model"}, trust=False)
        'not run: SavedModel graphs can run arbitrary TF ops; pass --trust'
        >>> not_run_reason({"format": "tflite"}, trust=False) is None
        True
    """
    reason = None if trust else UNTRUSTED_FORMATS.get(artifact["format"])
    return reason and f"not run: {reason}"


def verify_export_dir(export_dir, data=None, gates=None, threads=None, samples=None, latency_runs=LATENCY_RUNS,
                      progress=None, trust=False):
    """Re-verify an export dir: sha256 integrity, then parity of every artifact against its reference.

    Nothing in the dir is trusted: every manifest path must resolve inside it (UserError otherwise), and every
    hash (artifacts, and an external reference against `source_model.sha256`) is checked before anything
    runs; integrity failures skip parity (the files are not what was exported). Without `trust`, SavedModel
    artifacts are hash-checked but never loaded: they land in "not_run" (with the reason), not in
    "artifacts", and a SavedModel reference is a UserError. "passed" is True only when at least one artifact
    ran and every artifact that ran passed its gate; "not_run" lists what it does not vouch for.

    Returns {"integrity_problems": [...], "artifacts": [{"file", "format", "precision", "parity"}],
    "not_run": [{"file", "format", "reason"}], "passed": bool}.

    Example:
        >>> verify_export_dir("exports/resnet20_digits", data="digits")["passed"]  # doctest: +SKIP
        True
    """
    from export.manifest import artifact_path, integrity_problems, read_manifest
    from export.runtimes import load_runner

    manifest = read_manifest(export_dir)
    problems = integrity_problems(export_dir, manifest)
    result = {"export_dir": os.fspath(export_dir), "integrity_problems": problems, "artifacts": [], "not_run": []}
    if problems:
        return {**result, "passed": False}
    runnable = [a for a in manifest["artifacts"] if not not_run_reason(a, trust)]
    result["not_run"] = [{"file": a["file"], "format": a["format"], "reason": not_run_reason(a, trust)}
                         for a in manifest["artifacts"] if not_run_reason(a, trust)]
    if not runnable:
        return {**result, "data": None, "passed": False}
    gates = merge_gates(gates)
    reference_loader = reference_runner(export_dir, manifest, threads, trust)
    x, y, source = verification_split(manifest, data, samples)
    reference = reference_loader.predict(x)
    for artifact in runnable:
        if progress:
            progress(f"verify {artifact['file']}")
        runner = load_runner(artifact_path(export_dir, artifact["file"]), artifact["format"], threads)
        parity = verify_runner(runner, artifact["precision"], x, reference, y, gates, latency_runs)
        result["artifacts"].append({key: artifact[key] for key in ("file", "format", "precision")} | {"parity": parity})
    result["data"] = source
    result["passed"] = all(a["parity"]["passed"] for a in result["artifacts"])
    return result
