"""Streaming error statistics of one tensor over many samples, and the row they become.

Every sample adds its float reference `f` and the quantized artifact's value `q` of the same tensor (dequantized to
float). SQNR is pooled over all samples: 10·log10(Σf² / Σ(q−f)²) dB, the relative error ‖q−f‖ / ‖f‖ = 10^(−SQNR/20)
(the same definition as onnxruntime's `compute_signal_to_quantization_noice_ratio`, without keeping the tensors).
Memory is one float64 scalar per sum, so a ResNet-50 report holds no activations beyond the sample being run.

Example:
    >>> stats = ErrorStats()
    >>> stats.add(np.array([3.0, 4.0]), np.array([3.0, 4.5]))
    >>> round(stats.sqnr_db(), 2), round(stats.rel_err(), 3), stats.float_range()
    (20.0, 0.1, (3.0, 4.0))
    >>> ErrorStats().sqnr_db() is None  # nothing measured
    True
"""
import math

import numpy as np


class ErrorStats:
    """Σf², Σ(q−f)², min f and max f of one tensor, accumulated sample by sample."""

    def __init__(self):
        self.signal = 0.0
        self.noise = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.samples = 0

    def add(self, reference, value):
        """Add one sample: `reference` (float model) and `value` (quantized artifact, dequantized)."""
        reference = np.asarray(reference, dtype="float64")
        difference = np.asarray(value, dtype="float64") - reference
        self.signal += float(np.vdot(reference, reference))
        self.noise += float(np.vdot(difference, difference))
        if reference.size:
            self.low = min(self.low, float(reference.min()))
            self.high = max(self.high, float(reference.max()))
        self.samples += 1

    def sqnr_db(self):
        """Pooled SQNR in dB; inf when bit-exact, None when nothing (or only zeros) was measured."""
        if self.signal == 0.0:
            return None
        return math.inf if self.noise == 0.0 else 10.0 * math.log10(self.signal / self.noise)

    def rel_err(self):
        """‖q−f‖ / ‖f‖ over all samples; None when the reference is all zeros."""
        return None if self.signal == 0.0 else math.sqrt(self.noise / self.signal)

    def float_range(self):
        """(min, max) of the float reference, or (None, None) before any sample."""
        return (self.low, self.high) if self.samples else (None, None)


def rounded(value, digits=4):
    """A float for the report: rounded, inf and None kept as they are."""
    return value if value is None or not math.isfinite(value) else round(value, digits)


def ranking_key(row):
    """Worst first: the lowest own-error SQNR, then the lowest accumulated SQNR (None: not measured, last)."""
    def key(value):
        return math.inf if value is None else value

    return key(row["sqnr_db"]), key(row["sqnr_accumulated_db"])
