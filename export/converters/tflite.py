"""SavedModel -> TFLite flatbuffer at one precision (a table of converter settings per precision).

Precisions: fp32, fp16 (float16 weights), dynamic (int8 weights, float activations), int8 (full integer,
calibrated with a representative dataset; `int8_io` makes input/output tensors int8 too, their scale and
zero point are in the file and in the manifest), int16x8 (int16 activations, int8 weights).

Which precisions exist and which need calibration is decided by `export.formats.VARIANTS`; how each one configures
the TFLiteConverter is `export.converters.tflite_settings.SETTINGS`.

Example:
    >>> import keras, numpy as np, tempfile
    >>> from export.converters import ConvertContext
    >>> from export.serving_graph import to_saved_model
    >>> work = tempfile.mkdtemp()
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    >>> saved = to_saved_model(model, os.path.join(work, "saved_model"))["path"]
    >>> x_train = np.random.default_rng(0).random((20, 8, 8, 3), dtype="float32")
    >>> flatbuffer = convert(saved, "int8", calibration=x_train)
    >>> flatbuffer[4:8]  # the TFLite file identifier
    b'TFL3'
    >>> context = ConvertContext(saved, work, calibration=x_train)
    >>> os.path.basename(write(context, "fp32", os.path.join(work, "model_fp32.tflite")))  # export.formats' contract
    'model_fp32.tflite'
"""
import os

import numpy as np

from export.calibration import DEFAULT_METHOD
from export.converters import tflite_ranges
from export.converters.tflite_settings import SETTINGS
from export.core.errors import UserError
from export.core.files import write_bytes


# The int8 ops before the first convolution with this many output channels stay float (`small_conv_prefix`) when
# the export allows it (`export.pipeline._small_convs_float`: not for files that must be fully int8).
SMALL_CONV_CHANNELS = 16
SMALL_CONV_REASON = (
    "XNNPACK's int8 convolutions with < 16 output channels lose to its fp32 ones on x86: six 3x3 convs at 32x32, "
    "Xeon AVX-512 VNNI + AMX, 1 thread: 8 channels int8 0.64x fp32, 16 channels 1.27x, 32 channels 3.6x; shipped "
    "ResNet-20 (8-channel first stage), same run: fp32 0.319 ms, all int8 0.390 ms, first stage float 0.288 ms "
    "(on an AVX2-only EPYC its all-int8 file was 0.77x fp32 too)")
CONV_OUTPUT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": -1}  # TFLite op -> output-channel axis of its weight


def small_conv_prefix(flatbuffer, min_channels=SMALL_CONV_CHANNELS):
    """Names (first output tensors) of the ops before the first convolution with at least `min_channels` output
    channels, in execution order (`export.fallback.narrow_prefix`, the rule ONNX's float prefix uses too).

    Example:
        >>> small_conv_prefix(open("resnet20_fp32.tflite", "rb").read())[:1]  # doctest: +SKIP
        ['resnet20_1/conv1_relu_1/Relu;resnet20_1/conv1_bn_1/batchnorm/add_1;resnet20_1/conv1_conv_1/convolution']
    """
    from export.fallback import narrow_prefix
    from export.targets import read_graph

    graph = read_graph(flatbuffer)
    tensors = graph["tensors"]

    def channels(op):
        axis = CONV_OUTPUT_AXIS.get(op["op_name"])
        return None if axis is None else int(tensors[op["inputs"][1]]["shape"][axis])

    return narrow_prefix([(tensors[op["outputs"][0]]["name"], channels(op)) for op in graph["ops"]
                          if len(op["outputs"])], min_channels)


def float_convs(path):
    """Names of the convolutions of an int8 .tflite file that run in float (the small-conv prefix, the fallback's
    layers); what the manifest lists for a TFLite int8 file."""
    from export.targets import read_graph

    graph = read_graph(path)
    tensors = graph["tensors"]
    return [tensors[op["outputs"][0]]["name"] for op in graph["ops"] if op["op_name"] in CONV_OUTPUT_AXIS
            and tensors[op["inputs"][1]]["dtype"] == np.float32]


FP32_FILE_CACHE_KEY = "tflite_fp32_file"  # ConvertContext.cache key of the fp32 .tflite file
INT8_IO_CACHE_KEY = "tflite_int8_int8_io"  # ConvertContext.cache key of the int8 flatbuffer with int8 I/O


def convert(saved_model_dir, precision, calibration=None, int8_io=False, method=DEFAULT_METHOD, float_nodes=(),
            small_convs_float=False):
    """TFLite flatbuffer bytes of the SavedModel at `precision`.

    `calibration`: preprocessed float32 samples (N, H, W, C), required for int8 and int16x8.
    `int8_io` only applies to int8 (int8 input and output tensors).
    `method`: how int8/int16x8 activation ranges are calibrated (`export.calibration`; `tflite_ranges`).
    `float_nodes`: int8 only, output tensor names of ops kept in float (selective fallback, `export.fallback`).
    `small_convs_float`: int8 only, the ops before the first conv with SMALL_CONV_CHANNELS outputs stay float too.
    """
    import tensorflow as tf

    from export.core.quiet import native_noise_filtered
    from export.formats import variant

    if variant("tflite", precision).calibrated and (calibration is None or len(calibration) == 0):
        raise UserError(f"TFLite {precision} needs calibration data (--data)")

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    with native_noise_filtered():  # the converter's C++ chatter (fully_quantize: ..., SavedModel reader INFO)
        converter = SETTINGS[precision](converter, tf, calibration, int8_io and precision == "int8")
        prefix = small_conv_prefix if small_convs_float and precision == "int8" else None
        return tflite_ranges.convert(converter, precision, method, float_nodes, prefix)


def write(context, precision, path):
    """The export.formats contract: the flatbuffer of `context.saved_model_dir` at `precision`, written to `path`."""
    if context.raw_input:  # uint8 pixel input: export.converters.tflite_raw
        from export.converters import tflite_raw

        return tflite_raw.write(context, precision, path)
    flatbuffer = convert(context.saved_model_dir, precision, context.calibration, context.int8_io,
                         context.calibration_method, context.float_nodes, context.small_convs_float)
    if precision == "int8" and context.int8_io and not context.float_nodes:  # the micro row embeds these bytes
        context.cache[INT8_IO_CACHE_KEY] = flatbuffer
    write_bytes(path, flatbuffer)
    if precision == "fp32":  # the quantization report's float reference (export.pipeline)
        context.cache[FP32_FILE_CACHE_KEY] = path
    return path


def float_file(context):
    """The fp32 flatbuffer of the context's SavedModel as a file: the fp32 artifact when the run wrote one,
    else converted once into the work dir."""
    if FP32_FILE_CACHE_KEY not in context.cache:
        path = os.path.join(context.work_dir, "model_fp32.tflite")
        context.cache[FP32_FILE_CACHE_KEY] = write_bytes(path, convert(context.saved_model_dir, "fp32"))
    return context.cache[FP32_FILE_CACHE_KEY]
