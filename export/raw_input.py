"""`--raw-input`: artifacts that take uint8 pixels, with the model's preprocessing baked into their graph.

Camera pipelines deliver uint8 NHWC pixels; an artifact that expects normalized float input makes the device code
re-implement `normalize` (scale, offset, mean/std), a frequent source of silent accuracy loss. With `raw_input`,
the one traced SavedModel (of a Keras 3 model, a tf_keras twin or a SavedModel dir: wrapping the traced graph,
not the Keras model, works for all three) is wrapped by `bake` into a serving function
``uint8 pixels -> cast float32 -> normalize(spec) (one op, `normalize_op`) -> the model``, and every tflite / onnx / saved_model artifact
is converted from it (`export.converters.tflite_raw` for the TFLite specifics). The `.keras` artifact stays float
(normalized input): Keras cannot hold the cast and per-channel arithmetic without a custom or Lambda layer, which
this project refuses (safe_mode), and it is the parity reference `reszoo verify` reloads. Every artifact of a raw
run states its input in the manifest (`input_contract`); `takes_pixels` reads it back (verify, predict).

Parity: the reference is the float source on `normalize(pixels)` and the artifacts get the same `pixels`
(`model_inputs`), so both see the same uint8 image and the existing gates apply unchanged.

Example:
    >>> from export.data.preprocess import make_spec
    >>> contract = input_contract("tflite", make_spec((32, 32)))
    >>> contract["dtype"], contract["range"], contract["preprocessing"], takes_pixels({"input": contract})
    ('uint8', [0, 255], 'in the graph', True)
    >>> input_contract("keras", make_spec((32, 32)))["preprocessing"]
    'by the caller (normalize with the manifest preprocessing)'
"""
import dataclasses
import os

import numpy as np

from export.core.errors import UserError

PIXEL_FORMATS = ("saved_model", "tflite", "onnx")  # converted from the baked SavedModel: they take uint8 pixels
SPEC_IN_GRAPH = ("scale", "offset", "mean", "std")  # the spec values the baked graph applies
UINT8_SAVED_MODEL = "saved_model_raw_input"  # work-dir names of the baked SavedModels
FLOAT_PIXELS_SAVED_MODEL = "saved_model_float_pixels"


@dataclasses.dataclass(frozen=True)
class Baked:
    """The baked SavedModels: `saved_model_dir` takes uint8 pixels; `float_pixels_dir` takes the same pixels as
    float32 in [0, 255] (TFLite int8 is converted from it, see `export.converters.tflite_raw`)."""

    spec: dict
    saved_model_dir: str
    float_pixels_dir: str


def normalize_op(pixels, spec):
    """`normalize` as one graph op: a 1x1 depthwise convolution (gain per channel) plus bias (`affine`).

    Why not normalize's MUL, SUB, MUL: in TFLite int8 every elementwise op requantizes, and the ImageNet-spec
    test model (a Rescaling layer behind it) lost top-1 agreement with each step: 97.8 % (normalize), 98.9 %
    (one MUL + ADD), 99.4 % (this op, into which the converter also folds a following MUL/ADD); the same model
    fed normalized float input reaches 99.7 %. One op means one rounding, as quantizing a normalized input does.
    """
    import tensorflow as tf

    from export.data.preprocess import affine

    gain, bias = affine(spec)
    return tf.nn.depthwise_conv2d(pixels, gain.reshape(1, 1, -1, 1), [1, 1, 1, 1], "VALID") + bias


def _wrap(saved_model_dir, spec, directory, dtype):
    """Write a SavedModel whose serving_default casts its `dtype` pixels to float32, normalizes them by `spec`
    (`normalize_op`) and calls `saved_model_dir`'s serving_default (same input name, shape and outputs)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures["serving_default"]
    (input_name, input_spec), = signature.structured_input_signature[1].items()

    class RawInput(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = loaded  # tracked: the wrapped graph's variables are saved with it

        @tf.function(input_signature=[tf.TensorSpec(input_spec.shape, dtype, name=input_name)])
        def serve(self, pixels):
            normalized = normalize_op(tf.cast(pixels, tf.float32), spec)
            return signature(**{input_name: normalized})  # every output, under its own name

    module = RawInput()
    tf.saved_model.save(module, directory, signatures={"serving_default": module.serve})
    return directory


def bake(saved_model_dir, spec, work_dir):
    """Bake `spec` into the float SavedModel at `saved_model_dir` (untouched); returns `Baked`.

    Example:
        >>> bake("work/saved_model", spec, "work").saved_model_dir  # doctest: +SKIP
        'work/saved_model_raw_input'
    """
    import tensorflow as tf

    return Baked({k: spec[k] for k in SPEC_IN_GRAPH},
                 _wrap(saved_model_dir, spec, os.path.join(work_dir, UINT8_SAVED_MODEL), tf.uint8),
                 _wrap(saved_model_dir, spec, os.path.join(work_dir, FLOAT_PIXELS_SAVED_MODEL), tf.float32))


def model_inputs(images, spec):
    """(normalized float32, uint8 pixels) of `images` (LabeledImages): the pixels (`export.data.splits.pixels`)
    and the float model's input made from exactly those pixels, so reference and artifacts see the same image."""
    from export.data.preprocess import normalize
    from export.data.splits import pixels

    raw = pixels(images, spec)
    return normalize(raw.astype("float32"), spec).astype("float32"), raw


def with_pixels(data, calibration):
    """The pipeline's data dict for a raw run: uint8 calibration pixels, the reference's input from the verify
    pixels ("x_verify") and the pixels themselves ("x_verify_pixels")."""
    spec = data["spec"]
    x_verify, pixels = model_inputs(data["held_out"], spec)
    return {**data, "x_calibration": model_inputs(calibration, spec)[1], "x_verify": x_verify,
            "x_verify_pixels": pixels}


def takes_pixels_format(format):
    """True when artifacts of `format` are converted from the baked graph (uint8 input) in a raw run."""
    return format in PIXEL_FORMATS


def verification_input(data, format):
    """What the pipeline feeds an artifact of `format`: uint8 pixels in a raw run, else the normalized input."""
    return data["x_verify_pixels"] if "x_verify_pixels" in data and takes_pixels_format(format) else data["x_verify"]


def input_contract(format, spec):
    """The manifest's `input` of a raw run's artifact of `format`: uint8 pixels with the spec in the graph, or
    (.keras) float32 normalized by the caller."""
    shape = {"layout": "NHWC", "size": list(spec["input_size"]), "channels": int(spec["channels"])}
    if takes_pixels_format(format):
        return {"dtype": "uint8", "range": [0, 255], **shape, "preprocessing": "in the graph",
                "spec": {k: spec[k] for k in SPEC_IN_GRAPH}}
    return {"dtype": "float32", **shape, "preprocessing": "by the caller (normalize with the manifest preprocessing)"}


def takes_pixels(entry):
    """True when a manifest entry's `input` contract says uint8 pixels (entries without one take float input)."""
    return ((entry or {}).get("input") or {}).get("dtype") == "uint8"


def is_raw(manifest):
    """True when some artifact of the manifest takes uint8 pixels."""
    return any(takes_pixels(a) for a in manifest["artifacts"])


def sample_dtype(samples):
    """The dtype calibration samples are fed in: uint8 pixels stay uint8, anything else is float32."""
    return "uint8" if np.asarray(samples).dtype == np.uint8 else "float32"


def check_request(request):
    """One-line UserError for what --raw-input cannot give (run by `ExportRequest.build`)."""
    if not request.raw_input:
        return
    if not any(takes_pixels_format(v.format) for v in request.variants):
        raise UserError("--raw-input bakes preprocessing into tflite/onnx/saved_model artifacts; "
                        "--format keras alone stays float (normalized input)")
    if any(v.format == "micro" for v in request.variants):
        raise UserError("--raw-input does not apply to --format micro: its int8 input is quantized on the device "
                        "with the header's input scale and zero point; export micro without --raw-input")
