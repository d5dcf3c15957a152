"""Float <-> integer tensors as the runtimes take and give them: quantize, dequantize, what an input is fed.

Imports numpy only, so `export.cpus.worker` (run under QEMU, where TensorFlow is far too slow) and
`export.runtimes` share one definition.

Example:
    >>> dequantize(quantize(np.array([0.5, 1.0]), {"scale": 0.5, "zero_point": 3}, "int8"),
    ...            {"scale": 0.5, "zero_point": 3}).tolist()
    [0.5, 1.0]
"""
import numpy as np


def quantize(x, quantization, dtype):
    """Float -> integer tensor with `quantization` = {"scale", "zero_point"}."""
    info = np.iinfo(dtype)
    q = np.round(x / quantization["scale"] + quantization["zero_point"])
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, quantization):
    """Integer tensor -> float32 with `quantization` = {"scale", "zero_point"}."""
    return ((q.astype("float32") - quantization["zero_point"]) * quantization["scale"]).astype("float32")


PIXELS = {"scale": 1.0, "zero_point": 0}  # an unquantized uint8 input takes pixel values unchanged


def feed_for(x, tensor):
    """`x` (float32) as the input tensor `tensor` ({"dtype", "quantization"}) takes it: quantized with the
    tensor's scale and zero point, raw pixels (rounded, clipped) for an unquantized uint8 tensor, else float32.

    Example:
        >>> feed_for(np.array([0.0, 254.6]), {"dtype": "uint8", "quantization": None}).tolist()
        [0, 255]
        >>> feed_for(np.array([0.5]), {"dtype": "int8", "quantization": {"scale": 0.5, "zero_point": -1}}).tolist()
        [0]
    """
    if tensor["quantization"]:
        return quantize(x, tensor["quantization"], tensor["dtype"])
    if tensor["dtype"] == "uint8":
        return quantize(x, PIXELS, "uint8")
    return np.asarray(x, dtype="float32")
