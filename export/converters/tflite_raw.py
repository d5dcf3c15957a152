"""TFLite files of a `--raw-input` run (`export.raw_input`): every precision takes a uint8 pixel input tensor.

How each precision gets there (measured with ai-edge-litert / TF 2.21, see docs/export.md "Raw-pixel artifacts"):

    fp32 / fp16 / dynamic  the uint8 baked SavedModel as it is: uint8 -> CAST -> DEPTHWISE_CONV_2D (normalize) -> model
    int8      the float-pixel twin of the baked graph with `inference_input_type=uint8`: the input tensor is
              uint8 and the first op a QUANTIZE (uint8 -> int8); `pin_pixel_input` sets the input's
              quantization to scale 1 / zero point 0, so pixels go in unchanged and that QUANTIZE requantizes
              them to the calibrated range (bit-identical to feeding round(p / s + z) at the calibrated scale).
              No float tensor in the graph. (Converting the uint8 SavedModel instead keeps CAST -> float ->
              QUANTIZE, a float op an integer-only accelerator cannot run.) With int8_io the output is int8.
    int16x8   the uint8 baked SavedModel with float fallback allowed (16x8 quantization has no CAST and
              accepts only float32/int16 input types): uint8 -> CAST -> QUANTIZE(int16) -> ...; any other op
              that fell back to float is a UserError (`float_fallbacks`).

Example:
    >>> write(context, "int8", "out/model_int8.tflite")  # context.raw_input: an export.raw_input.Baked  # doctest: +SKIP
"""
import numpy as np

from export.calibration import DEFAULT_METHOD
from export.converters import tflite_ranges
from export.converters.tflite_settings import SETTINGS as FLOAT_INPUT_SETTINGS
from export.core.errors import UserError
from export.core.files import write_bytes

PIXEL_QUANTIZATION = {"scale": 1.0, "zero_point": 0}  # a uint8 tensor that holds pixels unchanged
EDGE_FLOAT_OPS = ("CAST", "QUANTIZE", "DEQUANTIZE")  # int16x8: float only where pixels enter and outputs leave


def _representative(calibration, dtype):
    def samples():
        for sample in calibration:
            yield [np.asarray(sample[None], dtype=dtype)]

    return samples


def _int8(converter, tf, calibration, int8_io):
    converter = FLOAT_INPUT_SETTINGS["int8"](converter, tf, calibration, int8_io)
    converter.representative_dataset = _representative(calibration, "float32")  # pixel values, as float
    converter.inference_input_type = tf.uint8
    return converter


def _int16x8(converter, tf, calibration, int8_io):
    converter = FLOAT_INPUT_SETTINGS["int16x8"](converter, tf, calibration, int8_io)
    converter.representative_dataset = _representative(calibration, "uint8")
    converter.target_spec.supported_ops = [*converter.target_spec.supported_ops, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def pin_pixel_input(flatbuffer):
    """The flatbuffer with its uint8 input tensor quantized at scale 1 / zero point 0 (pixels as they are).

    The converter gives the input the calibrated range (scale 1 only when calibration pixels span 0..255); the
    QUANTIZE op reading it requantizes to its own output scale, so only the input tensor's parameters change.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    subgraph = model.subgraphs[0]
    tensor = subgraph.tensors[subgraph.inputs[0]]
    tensor.quantization.scale = [PIXEL_QUANTIZATION["scale"]]
    tensor.quantization.zeroPoint = [PIXEL_QUANTIZATION["zero_point"]]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def float_fallbacks(flatbuffer):
    """Names of the ops (besides CAST/QUANTIZE/DEQUANTIZE) that read or write float32 tensors."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=bytes(flatbuffer))
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    return sorted({op["op_name"] for op in interpreter._get_ops_details() if op["op_name"] not in EDGE_FLOAT_OPS
                   and any(dtypes.get(i) == np.float32 for i in [*op["inputs"], *op["outputs"]] if i >= 0)})


def _no_float_fallback(flatbuffer):
    fallbacks = float_fallbacks(flatbuffer)
    if fallbacks:
        raise UserError(f"TFLite int16x8 with --raw-input: {', '.join(fallbacks)} cannot run in 16x8; "
                        "allowed with --raw-input: fp32, fp16, dynamic, int8")
    return flatbuffer


# precision -> (which baked SavedModel, converter settings); the rest as in export.converters.tflite
SETTINGS = {"fp32": ("saved_model_dir", FLOAT_INPUT_SETTINGS["fp32"]),
            "fp16": ("saved_model_dir", FLOAT_INPUT_SETTINGS["fp16"]),
            "dynamic": ("saved_model_dir", FLOAT_INPUT_SETTINGS["dynamic"]),
            "int8": ("float_pixels_dir", _int8), "int16x8": ("saved_model_dir", _int16x8)}
FINISH = {"int8": pin_pixel_input, "int16x8": _no_float_fallback}  # applied to the converted flatbuffer


def convert(baked, precision, calibration=None, int8_io=False, method=DEFAULT_METHOD):
    """TFLite flatbuffer bytes of the baked graph (`export.raw_input.Baked`) at `precision`, uint8 input tensor.

    `calibration`: uint8 pixels (N, H, W, C), required for int8 and int16x8; `method`: `export.calibration`.
    """
    import tensorflow as tf

    from export.core.quiet import native_noise_filtered
    from export.formats import variant

    if variant("tflite", precision).calibrated and (calibration is None or len(calibration) == 0):
        raise UserError(f"TFLite {precision} needs calibration data (--data)")
    source, settings = SETTINGS[precision]
    converter = tf.lite.TFLiteConverter.from_saved_model(getattr(baked, source))
    with native_noise_filtered():
        converter = settings(converter, tf, calibration, int8_io and precision == "int8")
        flatbuffer = tflite_ranges.convert(converter, precision, method)
    return FINISH.get(precision, lambda fb: fb)(flatbuffer)


def write(context, precision, path):
    """The export.formats contract for a raw run (`context.raw_input` set): the uint8-input file at `path`."""
    write_bytes(path, convert(context.raw_input, precision, context.calibration, context.int8_io,
                              context.calibration_method))
    return path
