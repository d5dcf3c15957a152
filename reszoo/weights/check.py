"""`reszoo import --check`: the imported Keras model against a numpy forward pass with PyTorch semantics.

The reference (`reszoo.weights.torch_forward`) reads the architecture from the state dict's keys alone, so it
shares nothing with reszoo's builders: a wrong stride, padding, epsilon or layer mapping shows up as a large
difference. Both run on the same random standard-normal inputs (the range normalized images have).

Example:
    >>> model, report = import_torch("resnet20-12fca82f.th", "resnet20")  # doctest: +SKIP
    >>> check_import(model, load_state_dict("resnet20-12fca82f.th"), report.layout).passed  # doctest: +SKIP
    True
"""
import dataclasses

import numpy as np

from reszoo.weights.torch_forward import torch_forward

# float32 re-association over ~20-150 layers leaves ~1e-6..1e-5 of the output range; one wrong semantic
# (zero instead of -inf pool padding, eps 1.001e-5 vs 1e-5 on small variances, a shifted stride) gives >= 1e-3
MAX_RELATIVE_DIFFERENCE = 1e-4


@dataclasses.dataclass(frozen=True)
class ImportCheck:
    """Largest output difference between the Keras model and the PyTorch-semantics reference."""

    max_abs: float
    relative: float  # max_abs / max |reference|
    samples: int
    passed: bool

    def summary(self):
        verdict = "PASS" if self.passed else f"FAIL (> {MAX_RELATIVE_DIFFERENCE:g})"
        return (f"check: max |difference| {self.max_abs:.3g} (relative {self.relative:.2g}) against a numpy "
                f"forward with PyTorch semantics on {self.samples} random inputs: {verdict}")


def keras_logits(model, images):
    """The model's output before a final Dense layer's activation (logits, not probabilities)."""
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        return np.asarray(model.predict_on_batch(images))
    features = keras.Model(model.inputs, last.input).predict_on_batch(images)
    kernel, bias = (np.asarray(w) for w in last.get_weights())
    return np.asarray(features) @ kernel + bias


def check_import(model, state, layout, samples=2, seed=0):
    """Compare `model` (imported from `state` through `layout`) with the PyTorch-semantics reference.

    Example:
        >>> check_import(model, state, "cifar").relative < 1e-5  # doctest: +SKIP
        True
    """
    shape = (samples, *model.input_shape[1:])
    images = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    expected = torch_forward(state, images, layout)
    difference = float(np.abs(keras_logits(model, images) - expected).max())
    relative = difference / max(float(np.abs(expected).max()), 1e-12)
    return ImportCheck(difference, relative, samples, relative <= MAX_RELATIVE_DIFFERENCE)
