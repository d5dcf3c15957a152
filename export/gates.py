"""The parity rules: metrics of an artifact's outputs against the reference, and the gates that judge them.

Shared by `export.verify` (one output) and `export.output_parity` (several outputs per model).

Metrics per artifact: max/mean absolute error and max error relative to the reference's range, top-1
agreement with the reference, accuracy and accuracy delta (points) when labels exist, the median batch-1
latency. Errors gated by a limit (fp32) are measured on logits: when the reference's outputs are softmax
probabilities, both sides become log p = z - logsumexp(z), clipped at p = 2^-100 (see `PROBABILITY_FLOOR`),
so probabilities that underflowed compare equal; other outputs, and the informative errors of precisions
gated on agreement, are compared as they are (`compared` says which).

Gates per precision come from `export.formats.VARIANTS` (`DEFAULT_GATES` is that view; override with
`parse_gate`/`merge_gates`):

    fp32            max_rel_err <= max(20 x reference noise, 1e-4), top-1 agreement == 100 % (ties within
                    what the error limit allows count as agreement)
    fp16            top-1 agreement >= 99.5 %
    dynamic/int8/int16x8   top-1 agreement >= 98 % and accuracy drop <= 1 point

The reference noise (`reference_noise`) is how far the reference moves from itself when run one sample at a
time instead of batched: float rounding of the same weights in another kernel order, which is what a correct
fp32 conversion differs by too.

Example:
    >>> import numpy as np
    >>> ref = np.array([[0.9, 0.1], [0.2, 0.8]]); out = ref + 1e-6
    >>> m = parity_metrics(ref, out, labels=np.array([0, 1]))
    >>> m["top1_agreement"], m["compared"], check_gate(m, "fp32", DEFAULT_GATES)
    (1.0, 'logits', [])
"""
import operator

import numpy as np

from export.core.errors import UserError
from export.formats import FP32_SAMPLES, default_gates

DEFAULT_GATES = default_gates()  # {precision: gate}, a view of export.formats.VARIANTS
# log p is clipped here. Not at float32's smallest normal (2^-126): runtimes flush softmax's exp to zero at
# different points just above it (random-init ResNet-50: Keras gives p = 0 where onnxruntime gives 2.1e-38, a
# log error of 0.58). 2^-100 leaves a factor 2^26 of headroom, where every float32 exp is exact to rounding;
# classes below it (p < 1e-30) carry no usable logit. Clipping both sides never increases a difference.
PROBABILITY_FLOOR = 2.0 ** -100
PROBABILITY_SUM_TOLERANCE = 1e-3  # rows of a float32 softmax sum to 1 within ~1e-6; int8 ones within 1/256 x N
NOISE_SAMPLES = FP32_SAMPLES  # samples the reference is re-run on (batch 1) to measure its own float noise
NOISE_RULE_KEYS = ("noise_multiple", "noise_floor")  # an explicit max_rel_err replaces these
GATE_KEYS = ("max_rel_err", "min_agreement", "max_accuracy_drop") + NOISE_RULE_KEYS + ("min_sqnr_db",
                                                                                         "max_samples")
# min_sqnr_db: feature outputs of multi-output models (export.output_parity); max_samples: `checked_samples`
LATENCY_RUNS = 30
LATENCY_WARMUP = 5


def error_limit(gate, noise_rel_err=0.0):
    """The largest max_rel_err `gate` allows, or None when it does not bound the error.

    An explicit `max_rel_err` is the limit. Otherwise `noise_multiple` x the reference's own noise (relative
    to its range), at least `noise_floor`. Why (fp32 defaults 20 and 1e-4): a correct conversion differs from
    the reference only by rounding in another kernel order, the same kind of difference as the reference at
    another batch size; measured on random-init ResNet-50 logits (16 digits, 224 px): TFLite 1.9x and ONNX
    0.6x that noise, so 20x leaves 10x headroom. The floor covers a reference whose batch-1 and batched
    kernels round identically (noise 0): 1e-4 of the range is ~1000 float32 epsilons, where correct files of
    the test models stay below 1e-5, while a 0.1 % weight change or two swapped channels exceed 2e-3.

    Example:
        >>> error_limit({"noise_multiple": 20.0, "noise_floor": 1e-4}, noise_rel_err=1e-5)
        0.0002
        >>> error_limit({"max_rel_err": 1e-3, "noise_multiple": 20.0}, 1.0), error_limit({"min_agreement": 0.9})
        (0.001, None)
    """
    if "max_rel_err" in gate:
        return gate["max_rel_err"]
    if "noise_multiple" in gate:
        return max(gate["noise_multiple"] * noise_rel_err, gate.get("noise_floor", 0.0))
    return None


# metric -> (its limit under a gate and the metrics, passes, failure message)
GATE_CHECKS = {
    "max_rel_err": (lambda gate, m: error_limit(gate, m.get("noise_rel_err", 0.0)), operator.le,
                    "max abs error / output range {v:.3g} > {l:.3g}"),
    "top1_agreement": (lambda gate, m: gate.get("min_agreement"), operator.ge, "top-1 agreement {v:.2%} < {l:.2%}"),
    "accuracy_drop": (lambda gate, m: gate.get("max_accuracy_drop"), operator.le,
                      "accuracy drop {v:.2f} points > {l:g}"),
}


def checked_samples(gate, count):
    """How many of `count` held-out samples a row under `gate` is checked on: all, or the gate's `max_samples`
    (fp32: the samples the reference noise is measured on, see `export.formats.FP32_SAMPLES`).

    Example:
        >>> checked_samples({"max_samples": 64.0}, 360), checked_samples({"min_agreement": 0.98}, 360)
        (64, 360)
    """
    return min(count, max(1, int(gate["max_samples"]))) if "max_samples" in gate else count


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
    if key not in GATE_KEYS:
        raise UserError(f"gate {text!r}: unknown key {key!r}; allowed: {', '.join(GATE_KEYS)}")
    return precision, key, number


def _set_gate(gates, precision, key, value):
    """One override; an explicit max_rel_err replaces the noise rule (the gate then shows the rule in force)."""
    if key == "max_rel_err":
        for noise_key in NOISE_RULE_KEYS:
            gates[precision].pop(noise_key, None)
    gates[precision][key] = value


def merge_gates(overrides=None):
    """DEFAULT_GATES updated by `overrides`: {precision: {key: value}} or a list of "PRECISION.KEY=VALUE"."""
    gates = default_gates()
    if isinstance(overrides, (list, tuple)):
        for precision, key, value in map(parse_gate, overrides):
            _set_gate(gates, precision, key, value)
    else:
        for precision, values in (overrides or {}).items():
            for key, value in values.items():
                _set_gate(gates, *parse_gate(f"{precision}.{key}={value}"))
    return gates


def labels_usable(labels, reference):
    """True when integer labels index the model's output classes."""
    return labels is not None and reference.ndim == 2 and int(labels.max()) < reference.shape[-1]


def top1_accuracy(labels, outputs):
    """Fraction of samples whose arg-max output is their label; None when the labels cannot index the outputs.

    Example: top1_accuracy(np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]])) -> 1.0
    """
    return float(np.mean(np.asarray(outputs).argmax(-1) == labels)) if labels_usable(labels, outputs) else None


def is_probabilities(reference, tolerance=PROBABILITY_SUM_TOLERANCE):
    """True when every row of `reference` (N, classes) is a probability distribution (a softmax output):
    entries >= 0, rows summing to 1 within `tolerance` (a quantized softmax needs more slack).

    Example:
        >>> is_probabilities(np.array([[0.25, 0.75]])), is_probabilities(np.array([[0.3, 0.75]]), tolerance=0.1)
        (True, True)
    """
    reference = np.asarray(reference)
    return bool(reference.ndim == 2 and reference.shape[-1] > 1 and reference.min() >= 0.0
                and np.all(np.abs(reference.sum(-1) - 1.0) <= tolerance))


def as_logits(probabilities):
    """log p (float64), p clipped at `PROBABILITY_FLOOR`: logits up to a per-row shift.

    Example:
        >>> as_logits(np.array([[1.0, 0.0]])).round(2).tolist()
        [[0.0, -69.31]]
    """
    return np.log(np.maximum(np.asarray(probabilities, dtype="float64"), PROBABILITY_FLOOR))


def comparable(reference, outputs, logits=True):
    """(reference, outputs, space) flattened to (N, -1) float64 in the space errors are measured in.

    Softmax probabilities become log-probabilities ("logits") unless `logits` is False: near 0 and 1 a
    probability hides its logit (float32 rounds it to 0 or 1), and a near-tie of a random-init net amplifies
    tiny logit rounding into a large probability change. Anything else is compared as it is ("outputs").
    """
    reference = np.asarray(reference, dtype="float64").reshape(len(reference), -1)
    outputs = np.asarray(outputs, dtype="float64").reshape(len(outputs), -1)
    if logits and is_probabilities(reference):
        return as_logits(reference), as_logits(outputs), "logits"
    return reference, outputs, "outputs"


def informative_samples(logits):
    """Samples whose log-probabilities (`as_logits`) have a second class above the floor: on the others the
    softmax saturated (one class 1.0, the rest below 2^-100, as a random-init ResNet-50 gives), so a logit
    error cannot show there.

    Example: informative_samples(as_logits(np.array([[1.0, 0.0], [0.9, 0.1]]))) -> 1
    """
    return int(np.sum((logits > np.log(PROBABILITY_FLOOR)).sum(-1) >= 2))


def _top1_agreement(reference, outputs, margin):
    """Fraction of samples whose output top-1 is a reference top-1 up to `margin` (a tie the gate allows)."""
    chosen = reference[np.arange(len(reference)), outputs.argmax(-1)]
    return float(np.mean(chosen >= reference.max(-1) - margin))


def parity_metrics(reference, outputs, labels=None, noise=0.0, gate=None):
    """Error (logits when the outputs are probabilities), top-1 agreement and (with labels) accuracy.

    Logits are compared for gates that bound the error (fp32; also when no gate is given); gates on agreement
    alone (fp16, int8, ...) compare the outputs as they are, since an int8 output rounds small probabilities
    to 0, whose logit says nothing about the conversion.
    `noise`: the reference's own noise (`reference_noise`), recorded and used by the gate's error limit;
    `gate`: the precision's gate; a sample counts as agreeing when the reference's scores of the two classes
    differ by no more than twice the gate's error limit (both within the limit can swap such a tie).
    """
    error_gated = gate is None or error_limit(gate) is not None
    ref, out, space = comparable(reference, outputs, logits=error_gated)
    error = np.abs(out - ref)
    output_range = float(ref.max() - ref.min()) or 1.0
    noise = float(noise) if error_gated else None  # measured in logits; only an error limit uses it
    noise_rel_err = None if noise is None else noise / output_range
    limit = error_limit(gate or {}, noise_rel_err or 0.0)
    metrics = {"samples": int(len(ref)), "compared": space, "max_abs_err": float(error.max()),
               "mean_abs_err": float(error.mean()), "output_range": output_range,
               "max_rel_err": float(error.max()) / output_range, "reference_noise": noise,
               "noise_rel_err": noise_rel_err, "tolerance": limit,
               "top1_agreement": _top1_agreement(ref, out, 2 * (limit or 0.0) * output_range)}
    if space == "logits":
        metrics["informative_samples"] = informative_samples(ref)
    if labels_usable(labels, ref):
        accuracy = float(np.mean(out.argmax(-1) == labels))
        reference_accuracy = float(np.mean(ref.argmax(-1) == labels))
        metrics.update(accuracy=accuracy, reference_accuracy=reference_accuracy,
                       accuracy_delta=100.0 * (accuracy - reference_accuracy),
                       accuracy_drop=max(0.0, 100.0 * (reference_accuracy - accuracy)))
    return metrics


def check_gate(metrics, precision, gates):
    """Reasons (one line each) why `metrics` fail the gate of `precision`; [] when it passes."""
    gate, reasons = gates.get(precision, {}), []
    for metric, (limit_of, passes, message) in GATE_CHECKS.items():
        limit = limit_of(gate, metrics)
        if limit is not None and metric in metrics and not passes(metrics[metric], limit):
            reasons.append(message.format(v=metrics[metric], l=limit))
    return reasons
