"""Parity of a model with several outputs, output by output (feature maps, or class scores next to them).

Each output is compared with the reference output of the same name (`export.outputs`):

- class scores ((N, classes), `Outputs.class_scores`): `export.gates.parity_metrics` and the precision's gate,
  as for a classifier (top-1 agreement, accuracy with labels, fp32 noise rule).
- features (anything else): no agreement applies. fp32 keeps the noise rule per output: max |error| over the
  output's range <= max(20 x the output's own batch-1 noise, 1e-4). Reduced precisions are gated on the
  signal-to-quantization-noise ratio of the whole output over the held-out samples,
  SQNR = 10 log10(sum ref^2 / sum (out - ref)^2), at least `FEATURE_SQNR_DB[precision]` (15 dB for int8,
  int16x8 and dynamic, 40 dB for fp16; measured and reasoned there). `--gate int8.min_sqnr_db=25` overrides.

The artifact's parity holds every output's metrics under "outputs", names the worst output ("worst_output":
the lowest SQNR among failing outputs, else overall) and repeats its errors at the top level, so reports keep
one row per artifact; failures are prefixed with the output name.

Example:
    >>> import numpy as np
    >>> ref = np.ones((2, 4, 4, 3)); out = ref + 0.01
    >>> round(sqnr_db(ref, out), 1)
    40.0
    >>> feature_gate("int8", {"int8": {"min_agreement": 0.98}})
    {'min_sqnr_db': 15.0}
"""
import numpy as np

from export.gates import (DEFAULT_GATES, GATE_CHECKS, LATENCY_RUNS, LATENCY_WARMUP, NOISE_SAMPLES, check_gate,
                          comparable, error_limit, parity_metrics)

SQNR_CAP_DB = 200.0  # an exact output (error 0) reports this; float32 rounding alone stays near 140 dB
# Feature outputs: the least SQNR (dB) per precision, over all held-out samples of one output. Measured on this
# AVX-512 VNNI CPU (tools/multi_output_parity.py; docs/export.md "Multi-output models"), lowest output of each:
#   3-stage backbone trained on digits (98.6 %): fp16 56, int8 32.3 (TFLite = ONNX to float rounding), int16x8
#   35.1 (its weights are int8 too), TFLite dynamic 37.7, ONNX dynamic 33.8; at random init: 63, 34.0, 39.5, 38.3;
#   resnet20 width 16 trained (92 %, 19 convs, stage outputs + class scores): fp16 65.4, int8 29.7, dynamic 36.8.
# int8 rounds each activation to 1/255 of its calibrated range; a CPU whose int8 kernels round differently (AVX2
# without VNNI, an off-by-one requantization) moves an element by at most one more step, which costs at most
# 13 dB (error power Δ²/12 -> 19Δ²/12 if every element moved a full step away): 29.7 - 13 > 15, so 15 dB stays
# under every correct file measured on either CPU. fp16 rounds weights to 11 bits and computes in fp32 on x86:
# 56 dB measured, 40 dB leaves 16. Broken files land far under 15: two swapped channels of a stage's last conv
# measure 3 dB on that stage, two same-shape outputs swapped under 10 dB (tests/export/test_multi_output.py). A
# 5 % random weight error (31 dB) is as large as int8's own error and passes here; the fp32 noise rule catches it.
FEATURE_SQNR_DB = {"fp16": 40.0, "int16x8": 15.0, "int8": 15.0, "dynamic": 15.0}
FEATURE_GATE_KEYS = ("max_rel_err", "noise_multiple", "noise_floor", "min_sqnr_db")


def sqnr_db(reference, outputs):
    """Signal-to-noise ratio (dB) of `outputs` against `reference` over every element (the quantization
    report's `ErrorStats` definition), within ±`SQNR_CAP_DB` so JSON holds it: bit-exact is +cap, noise on an
    all-zero reference -cap."""
    from export.quantreport.stats import ErrorStats

    stats = ErrorStats()
    stats.add(reference, outputs)
    if stats.noise == 0.0:
        return SQNR_CAP_DB
    value = stats.sqnr_db()
    return -SQNR_CAP_DB if value is None else float(min(SQNR_CAP_DB, value))


def sample_sqnr_db(reference, outputs):
    """The lowest per-sample SQNR (dB): how bad the worst held-out input is."""
    return min(sqnr_db(r, o) for r, o in zip(reference, outputs))


def feature_gate(precision, gates):
    """The gate of a feature output at `precision`: the fp32 noise rule (or an explicit max_rel_err), else the
    SQNR floor; `--gate PRECISION.KEY=VALUE` overrides of these keys apply (e.g. int8.min_sqnr_db=25)."""
    defaults = {"min_sqnr_db": FEATURE_SQNR_DB[precision]} if precision in FEATURE_SQNR_DB else {
        k: v for k, v in DEFAULT_GATES.get(precision, {}).items() if k in FEATURE_GATE_KEYS}
    given = {k: v for k, v in (gates or {}).get(precision, {}).items() if k in FEATURE_GATE_KEYS}
    if "max_rel_err" in given:
        defaults = {k: v for k, v in defaults.items() if k not in ("noise_multiple", "noise_floor")}
    return {**defaults, **given}


def feature_metrics(reference, outputs, noise=0.0, gate=None):
    """Errors of one feature output: max/mean |error|, max |error| over the reference's range (with the noise
    rule's limit as "tolerance"), SQNR over all samples and the worst sample's SQNR."""
    ref = np.asarray(reference, dtype="float64").reshape(len(reference), -1)
    out = np.asarray(outputs, dtype="float64").reshape(len(outputs), -1)
    error = np.abs(out - ref)
    output_range = float(ref.max() - ref.min()) or 1.0
    noise_rel_err = float(noise) / output_range
    return {"kind": "features", "samples": int(len(ref)), "compared": "outputs", "max_abs_err": float(error.max()),
            "mean_abs_err": float(error.mean()), "output_range": output_range,
            "max_rel_err": float(error.max()) / output_range, "reference_noise": float(noise),
            "noise_rel_err": noise_rel_err, "tolerance": error_limit(gate or {}, noise_rel_err),
            "sqnr_db": sqnr_db(ref, out), "min_sample_sqnr_db": sample_sqnr_db(ref, out)}


def _feature_failures(metrics, gate):
    limit_of, passes, message = GATE_CHECKS["max_rel_err"]
    reasons = []
    limit = limit_of(gate, metrics)
    if limit is not None and not passes(metrics["max_rel_err"], limit):
        reasons.append(message.format(v=metrics["max_rel_err"], l=limit))
    if "min_sqnr_db" in gate and not metrics["sqnr_db"] >= gate["min_sqnr_db"]:
        reasons.append(f"SQNR {metrics['sqnr_db']:.1f} dB < {gate['min_sqnr_db']:g} dB")
    return reasons


def output_parity(reference, outputs, precision, gates, labels=None, noise=0.0, class_scores=False):
    """Metrics, gate, failures and verdict of one output (class scores or features)."""
    if class_scores:
        gate = dict(gates.get(precision, {}))
        metrics = {"kind": "class_scores", **parity_metrics(reference, outputs, labels, noise, gate),
                   "sqnr_db": sqnr_db(reference, outputs)}
        failures = check_gate(metrics, precision, gates)
    else:
        gate = feature_gate(precision, gates)
        metrics = feature_metrics(reference, outputs, noise, gate)
        failures = _feature_failures(metrics, gate)
    return {**metrics, "shape": list(np.shape(reference)[1:]), "gate": gate, "failures": failures,
            "passed": not failures}


def outputs_noise(runner, x, reference, samples=None):
    """{name: the reference's own noise}: max |batched - one sample at a time| per output, in the space its
    errors are compared in (log-probabilities for softmax class scores, as `export.verify.reference_noise`)."""
    x = np.asarray(x[:samples or NOISE_SAMPLES], dtype="float32")
    again = [np.concatenate(parts) for parts in zip(*(runner.run_all(x[i:i + 1]) for i in range(len(x))))]
    noise = {}
    for name, second in zip(runner.output_names, again):
        first, second, _ = comparable(reference.arrays[name][:len(x)], second, name in reference.class_scores)
        noise[name] = float(np.abs(first - second).max())
    return noise


def _structure_failures(reference, names, arrays):
    """Lines for outputs that are missing, extra, or of another shape than the reference's."""
    failures = [f"{name}: missing (the artifact has {', '.join(names)})" for name in reference.names
                if name not in arrays]
    failures += [f"{name}: not an output of the reference" for name in names if name not in reference.arrays]
    failures += [f"{name}: shape {list(arrays[name].shape[1:])} != reference {list(ref.shape[1:])}"
                 for name, ref in reference.arrays.items() if name in arrays and arrays[name].shape != ref.shape]
    return failures


def worst_output(per_output):
    """The name of the output to show: the lowest SQNR among failing outputs, else among all."""
    failing = [name for name, m in per_output.items() if not m["passed"]]
    return min(failing or per_output, key=lambda name: per_output[name]["sqnr_db"])


SUMMARY_KEYS = ("max_abs_err", "mean_abs_err", "max_rel_err", "output_range", "sqnr_db")  # from the worst output
CLASS_KEYS = ("top1_agreement", "accuracy", "reference_accuracy", "accuracy_delta", "accuracy_drop")


def outputs_parity(outputs, reference, precision, gates, labels=None, noise=None):
    """The parity dict of an artifact's `outputs` ({name: array}) against `reference` (an `Outputs`).

    {"outputs": {name: output_parity}, "output_order", "worst_output", SUMMARY_KEYS of the worst output,
    CLASS_KEYS of the first class-score output (None without one), "failures" ("NAME: reason"), "passed"}.
    """
    names = list(outputs)
    failures = _structure_failures(reference, names, outputs)
    if failures:
        return {"samples": int(len(next(iter(reference.arrays.values())))), "outputs": {}, "output_order": names,
                "worst_output": None, "top1_agreement": None, "failures": failures, "passed": False}
    per_output = {name: output_parity(reference.arrays[name], outputs[name], precision, gates, labels,
                                      (noise or {}).get(name, 0.0), name in reference.class_scores)
                  for name in reference.names}
    worst = worst_output(per_output)
    first_class = per_output[reference.class_scores[0]] if reference.class_scores else {}
    return {"samples": per_output[worst]["samples"], "outputs": per_output, "output_order": names,
            "worst_output": worst, **{key: per_output[worst][key] for key in SUMMARY_KEYS},
            **{key: first_class.get(key) for key in CLASS_KEYS},
            "failures": [f"{name}: {reason}" for name, m in per_output.items() for reason in m["failures"]],
            "passed": all(m["passed"] for m in per_output.values())}


def verify_outputs(runner, precision, x, reference, labels=None, gates=None, latency_runs=LATENCY_RUNS,
                   latency_warmup=LATENCY_WARMUP, noise=None):
    """`export.verify.verify_runner` for an `Outputs` reference: run every output, parity per output, latency.

    Example:
        >>> import reszoo
        >>> from export.outputs import reference_outputs
        >>> from export.runtimes import KerasRunner
        >>> backbone = KerasRunner.from_model(reszoo.create_model("resnet20", width=4, features_only=True))
        >>> x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
        >>> reference = reference_outputs(backbone, x)
        >>> parity = verify_outputs(backbone, "fp32", x, reference, latency_runs=0)  # the artifact's runner here
        >>> parity["passed"], sorted(parity["outputs"])
        (True, ['output_0', 'output_1', 'output_2'])
    """
    gates = gates or DEFAULT_GATES
    outputs = dict(zip(runner.output_names, runner.predict_all(x)))
    parity = outputs_parity(outputs, reference, precision, gates, labels, noise)
    latencies = runner.latency_ms(x[:1], runs=latency_runs, warmup=latency_warmup) if latency_runs else []
    parity["latency_ms_median"] = float(np.median(latencies)) if latencies else None
    parity["gate"] = {"class_scores": dict(gates.get(precision, {})), "features": feature_gate(precision, gates)}
    return parity
