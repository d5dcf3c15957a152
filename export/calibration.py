"""Calibration methods of full-integer quantization: how each activation tensor's range is chosen.

Every method starts from what a min/max calibration records per activation tensor, its range [lo, hi] over
the calibration samples, and a histogram of |x| (`BINS` bins over [0, max(|lo|, |hi|)], exact zeros counted
apart). `minmax` keeps [lo, hi]; the others pick a clipping threshold T on |x| and use [max(lo, -T), min(hi, T)]:

    minmax      T = max|x|: every calibration value representable (the converters' own calibration)
    percentile  T = the `PERCENTILE`th percentile of |x| (zeros included)
    entropy     T minimizing KL(P || Q), P the histogram clipped at T, Q its copy merged into the levels the
                quantized tensor has in [0, T] (TensorRT's entropy calibration, as pytorch-quantization computes it)
    mse         T minimizing the expected squared error: (|x| - T)^2 for every clipped value plus step^2 / 12
                for every nonzero value inside (step = the range over the grid's steps, `Scheme`)

How each runtime applies a method (`METHODS`): `minmax` is the converter's own calibration, unchanged (TFLite's
calibrator, ORT's MinMax). The others compute the ranges here from histograms of the float model's activations
on the same calibration samples and hand them to the same quantizer: TFLite by editing the min/max of the
calibrated float flatbuffer before quantizing it (`export.converters.tflite_ranges`), ONNX as an onnxruntime
calibration cache (`export.converters.onnx_ranges`). So a method means the same thing in both runtimes.
(ORT's own Percentile/Entropy calibrators differ: Percentile is symmetric on |x| at 99.999 by default, Entropy
uses 128 bins by default, which leaves a single candidate threshold, and both keep every intermediate output
of every sample in memory.)

Example:
    >>> histograms = Histograms({"t": (0.0, 100.0)})
    >>> histograms.add("t", np.r_[np.linspace(0.0, 1.0, 100_000), 100.0])  # one outlier at 100
    >>> lo, hi = ranges("percentile", histograms, INT8)["t"]
    >>> lo, round(hi, 2), ranges("minmax", histograms, INT8)["t"]
    (0.0, 1.03, (0.0, 100.0))
"""
import dataclasses

import numpy as np

from export.core.errors import UserError

BINS = 2048  # histogram bins over [0, max|x|]; 8x finer than int8's grid, as TensorRT and ORT use
PERCENTILE = 99.99


@dataclasses.dataclass(frozen=True)
class Scheme:
    """The quantized grid of an activation tensor: `bits`, and whether it is symmetric (zero point 0)."""

    bits: int
    symmetric: bool

    def step(self, lo, hi, threshold):
        """The grid step of [lo, hi] clipped at `threshold` (arrays broadcast)."""
        top, bottom = np.minimum(hi, threshold), np.minimum(-lo, threshold)
        if self.symmetric:
            return np.maximum(top, bottom) / (2 ** (self.bits - 1) - 1)
        return (top + bottom) / (2 ** self.bits - 1)

    def levels(self, lo, hi):
        """Grid steps between 0 and max|x| (int8: 255 for a one-sided range, ~128 for a signed one)."""
        top = max(-lo, hi)
        return int(round(top / self.step(lo, hi, top))) if top > 0 else 1


INT8 = Scheme(8, symmetric=False)  # TFLite int8 and ORT QInt8 activations: asymmetric, zero point in the file
INT16 = Scheme(16, symmetric=True)  # TFLite int16x8 activations: symmetric int16
SCHEMES = {("tflite", "int8"): INT8, ("tflite", "int16x8"): INT16, ("onnx", "int8"): INT8}


class Histograms:
    """Per-tensor histograms of |x| over [0, max(|lo|, |hi|)] of the recorded range; exact zeros apart.

    Example:
        >>> h = Histograms({"relu": (0.0, 4.0)}); h.add("relu", np.array([0.0, 0.0, 1.0, 4.0]))
        >>> int(h.zeros["relu"]), int(h.counts["relu"].sum()), h.top("relu")
        (2, 2, 4.0)
    """

    def __init__(self, extremes):
        self.extremes = {key: (min(float(lo), 0.0), max(float(hi), 0.0)) for key, (lo, hi) in extremes.items()}
        self.counts = {key: np.zeros(BINS, np.int64) for key in self.extremes}
        self.zeros = dict.fromkeys(self.extremes, 0)

    def top(self, key):
        lo, hi = self.extremes[key]
        return max(-lo, hi)

    def add(self, key, values):
        """Count `values` (any shape) of tensor `key`; values past the recorded range land in the last bin."""
        magnitudes = np.abs(np.asarray(values, dtype=np.float32).ravel())
        nonzero = magnitudes[magnitudes > 0]
        self.zeros[key] += magnitudes.size - nonzero.size
        top = self.top(key)
        if top > 0 and nonzero.size:
            bins = np.minimum((nonzero * np.float32(BINS / top)).astype(np.int64), BINS - 1)
            self.counts[key] += np.bincount(bins, minlength=BINS)


def _edges(top):
    return np.arange(BINS + 1) * (top / BINS)


def percentile_threshold(counts, zeros, lo, hi, scheme, percentile=PERCENTILE):
    """The upper edge of the bin holding the `percentile`th percentile of |x|."""
    total = counts.sum() + zeros
    cumulative = zeros + np.cumsum(counts)
    index = int(np.searchsorted(cumulative, total * percentile / 100.0))
    return _edges(max(-lo, hi))[min(index + 1, BINS)]


def entropy_threshold(counts, zeros, lo, hi, scheme):
    """The threshold (a bin edge) of least KL divergence between the clipped and the quantized histogram.

    TensorRT's algorithm (as MXNet and onnxruntime write it): for each candidate i >= levels, P = counts[:i]
    with everything beyond added to its last bin; Q = counts[:i] (outliers left out) merged into `levels`
    equal groups, each group's sum spread over the bins where P is nonzero; both smoothed (`_smoothed`).
    Exact zeros are left out, as pytorch-quantization does (`bins[0] = bins[1]`): a ReLU output's zero spike
    (half its values on the trained tiny ResNet) otherwise dominates P and the search clips to ~20 % of max|x|.
    Ties: the largest i. With more levels than bins (int16) nothing clips: max|x|.
    """
    counts = counts.astype(np.float64)
    levels = scheme.levels(lo, hi)
    best, best_divergence = BINS, np.inf
    for i in range(max(levels, 1), BINS + 1):
        reference = counts[:i].copy()
        reference[-1] += counts[i:].sum()
        groups = (np.arange(i) * levels) // i
        present = reference > 0
        sums = np.bincount(groups, weights=counts[:i], minlength=levels)
        sizes = np.bincount(groups[present], minlength=levels)
        candidate = np.zeros(i)
        candidate[present] = sums[groups[present]] / sizes[groups[present]]
        divergence = _kl(_smoothed(reference), _smoothed(candidate))
        if divergence <= best_divergence:
            best, best_divergence = i, divergence
    return _edges(max(-lo, hi))[best]


def _smoothed(counts, eps=1e-4):
    """`counts` with `eps` moved onto its empty bins from the others (MXNet's and onnxruntime's smoothing)."""
    empty = counts == 0
    filled = counts.size - empty.sum()
    if filled == 0:
        return None
    smoothed = counts + np.where(empty, eps, -eps * empty.sum() / filled)
    return smoothed if np.all(smoothed > 0) else None


def _kl(p, q):
    if p is None or q is None:
        return np.inf
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def mse_threshold(counts, zeros, lo, hi, scheme):
    """The bin edge T minimizing sum over clipped values of (|x| - T)^2 + (nonzero values inside) * step(T)^2 / 12."""
    counts = counts.astype(np.float64)
    edges = _edges(max(-lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    candidates = edges[1:]  # T = upper edge of bin i - 1, i = 1..BINS
    suffix = [np.r_[np.cumsum((counts * centers ** k)[::-1])[::-1], 0.0][1:] for k in (0, 1, 2)]
    clipped = suffix[2] - 2 * candidates * suffix[1] + candidates ** 2 * suffix[0]
    inside = np.cumsum(counts)
    rounding = inside * scheme.step(lo, hi, candidates) ** 2 / 12
    return candidates[int(np.argmin(clipped + rounding))]


@dataclasses.dataclass(frozen=True)
class Method:
    """A calibration method: its threshold rule (None: keep the recorded min/max) and one line on it."""

    name: str
    threshold: object  # (counts, zeros, lo, hi, scheme) -> T, or None
    summary: str

    @property
    def native(self):
        """True when the converter's own min/max calibration is the method (no ranges to compute)."""
        return self.threshold is None


METHODS = {method.name: method for method in (
    Method("minmax", None, "the recorded min/max: every calibration value representable"),
    Method("percentile", percentile_threshold, f"clip |x| at its {PERCENTILE}th percentile"),
    Method("entropy", entropy_threshold, "clip |x| where the quantized histogram keeps the most information (KL)"),
    Method("mse", mse_threshold, "clip |x| where clipping plus rounding error is least"),
)}
# Measured (tools/calibration_methods.py, docs/quantization.md "Calibration methods"): on the trained tiny
# ResNet and the shipped resnet20_digits, percentile and mse agree with the float model within 1-3 of 360 held-out digits of minmax,
# above on some rows and below on others, and SQNR within +-1 dB but for one row (ONNX percentile on resnet20,
# +3 dB); entropy fails the int8 gate on the tiny ResNet (62 %). Nothing beats minmax, so it stays the default.
DEFAULT_METHOD = "minmax"


def check_method(name):
    """`name` when it is a known method, else a one-line UserError naming the allowed ones.

    Example:
        >>> check_method("entropy")
        'entropy'
    """
    if name not in METHODS:
        raise UserError(f"--calibration {name!r}: unknown method; allowed: {', '.join(METHODS)}")
    return name


def ranges(method, histograms, scheme, kept=()):
    """{key: (lo, hi)} of every tensor in `histograms` under `method` (a METHODS name).

    The range keeps 0 inside (both quantizers require it) and never grows past the recorded one. Tensors in
    `kept` (the graph's inputs and outputs) keep the recorded range: clipping an input changes the data, and
    clipping an output changes the answer (entropy clipped the tiny ResNet's probabilities to [0, 0.16]).
    """
    rule = METHODS[check_method(method)].threshold
    chosen = {}
    for key, (lo, hi) in histograms.extremes.items():
        if rule is None or max(-lo, hi) == 0 or key in kept:
            chosen[key] = (lo, hi)
            continue
        threshold = float(rule(histograms.counts[key], histograms.zeros[key], lo, hi, scheme))
        chosen[key] = (max(lo, -threshold), min(hi, threshold))
    return chosen


def collect(extremes, batches):
    """Histograms of the tensors in `extremes` ({key: (lo, hi)}) over `batches` (iterable of {key: array})."""
    histograms = Histograms(extremes)
    for batch in batches:
        for key, values in batch.items():
            if key in histograms.extremes:
                histograms.add(key, values)
    return histograms
