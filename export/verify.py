"""Parity of each artifact, run in its own runtime, against the reference model on the held-out split.

`verify_runner` runs one artifact and judges it by the rules of `export.gates` (metrics, default gates per
precision, the reference's own noise); `verify_export_dir` re-verifies an export dir (sha256 first).

Example:
    >>> merged = with_cpu_results({"failures": [], "passed": True}, {})
    >>> merged["passed"]
    True
"""
import os

import numpy as np

from export.core.errors import UserError
from export.gates import (DEFAULT_GATES, LATENCY_RUNS, LATENCY_WARMUP, NOISE_SAMPLES, check_gate, checked_samples,
                           comparable, merge_gates, parity_metrics)


def reference_noise(runner, x, reference, samples=NOISE_SAMPLES):
    """Max |difference| (in the compared space) between `reference` and the reference re-run one sample at a time.

    Example:
        >>> import keras
        >>> from export.runtimes import KerasRunner
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        >>> x = np.random.default_rng(0).random((8, 4), dtype="float32")
        >>> reference_noise(KerasRunner.from_model(model), x, model.predict(x, verbose=0)) < 1e-6
        True
    """
    from export.outputs import Outputs

    if isinstance(reference, Outputs):  # several outputs: {name: noise}
        from export.output_parity import outputs_noise

        return outputs_noise(runner, x, reference, samples)
    x = np.asarray(x[:samples], dtype="float32")
    again = np.concatenate([runner.run_batch(x[i:i + 1]) for i in range(len(x))])
    first, second, _ = comparable(np.asarray(reference)[:len(x)], again)
    return float(np.abs(first - second).max())


def verify_runner(runner, precision, x, reference, labels=None, gates=None, latency_runs=LATENCY_RUNS,
                  latency_warmup=LATENCY_WARMUP, noise=0.0):
    """Run `runner` on `x`, compare with `reference` (whose own noise is `noise`), time batch-1 calls.

    Returns the parity dict: `parity_metrics`, "latency_ms_median", "gate", "failures", "passed"; the first
    `checked_samples` of `x` are compared (fp32: 64, every sample otherwise). A reference with several
    outputs (`export.outputs.Outputs`) is compared output by output (`export.output_parity`).
    """
    from export.outputs import Outputs, head

    count = checked_samples((gates or DEFAULT_GATES).get(precision, {}), len(x))
    x, reference, labels = x[:count], head(reference, count), None if labels is None else labels[:count]
    if isinstance(reference, Outputs):
        from export.output_parity import verify_outputs

        return verify_outputs(runner, precision, x, reference, labels, gates, latency_runs, latency_warmup, noise)
    gate = dict((gates or DEFAULT_GATES).get(precision, {}))
    metrics = parity_metrics(reference, runner.predict(x), labels, noise, gate)
    latencies = runner.latency_ms(x[:1], runs=latency_runs, warmup=latency_warmup) if latency_runs else []
    metrics["latency_ms_median"] = float(np.median(latencies)) if latencies else None
    metrics["gate"] = gate
    metrics["failures"] = check_gate(metrics, precision, gates or DEFAULT_GATES)
    metrics["passed"] = not metrics["failures"]
    return metrics


def with_cpu_results(parity, verified_on):
    """`parity` with the failures of every other CPU kind's record added, each named by its CPU, and "passed"
    false when one CPU failed (`verified_on`: {kind: {"failures", "passed", ...}}, `export.cpus.verify`).

    Example:
        >>> merged = with_cpu_results({"failures": [], "passed": True},
        ...                           {"arm64-v8": {"failures": ["top-1 agreement 96.00% < 98.00%"], "passed": False}})
        >>> merged["passed"], merged["failures"]
        (False, ['on arm64-v8: top-1 agreement 96.00% < 98.00%'])
    """
    failures = [f"on {name}: {line}" for name, record in verified_on.items() for line in record["failures"]]
    return {**parity, "failures": [*parity["failures"], *failures], "passed": parity["passed"] and not failures}


UNTRUSTED_FORMATS = {"saved_model": "SavedModel graphs can run arbitrary TF ops; pass --trust"}  # format -> why
# Runs without --trust: TFLite (LiteRT interpreter, no Flex delegate), ONNX (onnxruntime CPU, no custom-op
# libraries) and .keras (keras safe_mode=True: Lambda layers and pickled code are refused) are data, not code.


def reference_location(export_dir, manifest):
    """(path, format) of the manifest's parity reference: `reference.file` confined to the dir, else the
    external `reference.path`; UserError when it is not there. The one place that finds the reference.

    Example:
        >>> reference_location("exports/demo", {"reference": {"path": "saved_models/resnet20_digits.keras"}})
        ('saved_models/resnet20_digits.keras', 'keras')
    """
    from export.manifest import artifact_path

    reference = manifest.get("reference") or {}
    file = reference.get("file")
    path = artifact_path(export_dir, file, "reference.file") if file else reference.get("path")
    if not path or not os.path.exists(path):
        raise UserError(f"the parity reference of {os.fspath(export_dir)!r} ({path}) is not available; "
                        "export with --format keras to keep it in the dir")
    return path, reference.get("format", "keras")


def reference_entry(manifest):
    """The manifest's artifact entry of its parity reference when it is a listed file, else `reference` itself."""
    reference = manifest.get("reference") or {}
    listed = [a for a in manifest["artifacts"] if reference.get("file") and a.get("file") == reference["file"]]
    return listed[0] if listed else reference


def reference_runner(export_dir, manifest, threads=None, trust=False):
    """Runner for the manifest's parity reference (a file in the dir, or the source model's path).

    The path is confined to the dir (`export.manifest.artifact_path`); a SavedModel reference is refused
    without `trust` (UserError), since loading and calling it runs whatever TF ops its graph holds.

    Example:
        >>> manifest = {"reference": {"path": "saved_models/resnet20_digits.keras", "format": "keras"}}
        >>> reference_runner("exports/demo", manifest).predict(np.zeros((2, 32, 32, 3), "float32")).shape
        (2, 10)
    """
    from export.runtimes import load_runner

    path, fmt = reference_location(export_dir, manifest)
    if fmt in UNTRUSTED_FORMATS and not trust:
        raise UserError(f"the parity reference {path} is a {fmt}, not run: {UNTRUSTED_FORMATS[fmt]}")
    return load_runner(path, fmt, threads)


def verification_split(manifest, data=None, samples=None):
    """(x preprocessed, y or None, source) of the held-out split the manifest's preprocessing expects."""
    from export.data.splits import prepare

    held_out, source = verification_images(manifest, data, samples)
    return prepare(held_out, manifest["preprocessing"]), held_out.y, source


def verification_images(manifest, data=None, samples=None):
    """(held-out LabeledImages, source) the manifest's preprocessing expects (at most `samples` of them)."""
    from export.data.splits import first, native_load_size, split_for_spec

    spec = manifest["preprocessing"]
    source = data or (manifest.get("data") or {}).get("source")
    if not source:
        raise UserError("no verification data: pass --data (digits, a class-folder dir, or an .npz)")
    _, held_out = split_for_spec(source, spec, class_names=manifest.get("labels"),
                                 load_size=native_load_size(source, spec))
    return first(held_out, samples), source


def verification_inputs(manifest, data=None, samples=None):
    """(feed, y, source): feed(entry) is the held-out input for a manifest entry (uint8 pixels for an entry
    whose `input` contract says so, `export.raw_input`; else preprocessed float32)."""
    from export import raw_input

    if not raw_input.is_raw(manifest):
        x, y, source = verification_split(manifest, data, samples)
        return (lambda entry: x), y, source
    held_out, source = verification_images(manifest, data, samples)
    x, pixels = raw_input.model_inputs(held_out, manifest["preprocessing"])
    return (lambda entry: pixels if raw_input.takes_pixels(entry) else x), held_out.y, source


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
                      progress=None, trust=False, other_cpus=None):
    """Re-verify an export dir: sha256 integrity, then parity of every artifact against its reference.

    Nothing in the dir is trusted: every manifest path must resolve inside it (UserError otherwise), and every
    hash (artifacts, and an external reference against `source_model.sha256`) is checked before anything
    runs; integrity failures skip parity (the files are not what was exported). Without `trust`, SavedModel
    artifacts are hash-checked but never loaded: they land in "not_run" (with the reason), not in
    "artifacts", and a SavedModel reference is a UserError. "passed" is True only when at least one artifact
    ran and every artifact that ran passed its gate; "not_run" lists what it does not vouch for.

    `other_cpus`: None, or a callable (path, format, precision, x, reference, labels, gates, noise) -> {CPU kind:
    parity record} (`export.cpus.verify.checker`) run on each artifact after this host: "verified_on" per
    artifact, every CPU's failures in its parity (`with_cpu_results`).

    Returns {"integrity_problems": [...], "artifacts": [{"file", "format", "precision", "parity"}],
    "not_run": [{"file", "format", "reason"}], "passed": bool}.

    Example:
        >>> verify_export_dir("exports/resnet20_digits", data="digits")["passed"]  # doctest: +SKIP
        True
    """
    from export.manifest import artifact_path, integrity_problems, read_manifest
    from export.outputs import reference_outputs
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
    feed, y, source = verification_inputs(manifest, data, samples)
    x = feed(reference_entry(manifest))
    reference = reference_outputs(reference_loader, x, len(manifest.get("labels") or []))
    noise = reference_noise(reference_loader, x, reference)
    for artifact in runnable:
        if progress:
            progress(f"verify {artifact['file']}")
        runner = load_runner(artifact_path(export_dir, artifact["file"]), artifact["format"], threads)
        parity = verify_runner(runner, artifact["precision"], feed(artifact), reference, y, gates, latency_runs,
                               noise=noise)
        entry = {key: artifact[key] for key in ("file", "format", "precision")}
        verified_on = other_cpus(artifact_path(export_dir, artifact["file"]), artifact["format"], artifact["precision"],
                                 feed(artifact), reference, y, gates, noise) if other_cpus else {}
        if verified_on:
            entry["verified_on"], parity = verified_on, with_cpu_results(parity, verified_on)
        result["artifacts"].append(entry | {"parity": parity})
    result["data"] = source
    result["passed"] = all(a["parity"]["passed"] for a in result["artifacts"])
    return result
