"""TFLite full-integer conversion with activation ranges chosen by a calibration method (`export.calibration`).

Every int8/int16x8 conversion runs in the converter's own two steps, with the ranges computed in between:

1. calibrate: the configured converter with `_experimental_calibrate_only` returns the float flatbuffer in
   which its calibrator recorded each activation tensor's min/max (`tensor.quantization.min/max`) — fed ONE
   sample: it only has to mark the tensors to calibrate. TF's calibrator runs every op with a logging kernel,
   ~1.7 s per ResNet-50 sample on a loaded 2-core Xeon against 0.064 s in LiteRT with 2 threads;
2. min/max: that flatbuffer runs in LiteRT (marked tensors as graph outputs, XNNPACK, every core) on all
   calibration samples; each marked tensor's running min/max is its range (what the calibrator records);
   other methods run it once more for histograms (`export.calibration.Histograms`) over those ranges;
3. the method's ranges replace the recorded min/max (`with_ranges`), and the edited flatbuffer is quantized by
   the quantizer the converter itself would call (`REQUANTIZE`): int8 by `mlir_quantize` (as `lite.py` and
   `tf.lite.experimental.QuantizationDebugger` do), int16x8 by the calibration wrapper's `QuantizeModel`
   without new samples, which reads the ranges in the file (`lite.py` sends 16-bit activations there).

With the calibrator's own ranges, steps 1 + 3 give the converter's own scales and zero points on every tensor, and
the min/max of step 2 gives them to float rounding (both tested), so a file's scales differ from the converter's
only by the method's ranges.

Example:
    >>> flatbuffer = convert(converter, "int8", "percentile")  # a configured TFLiteConverter  # doctest: +SKIP
"""
import os

import numpy as np

from export import calibration as methods

SUBGRAPH = 0  # the main graph; tensors of other subgraphs (control flow) keep their recorded ranges


def recorded_ranges(flatbuffer):
    """{tensor index: (min, max)} the calibrator recorded in the main subgraph of a calibrated flatbuffer."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    recorded = {}
    for index, tensor in enumerate(model.subgraphs[SUBGRAPH].tensors):
        quantization = tensor.quantization
        if quantization is not None and quantization.min is not None and len(quantization.min) == 1:
            recorded[index] = (float(quantization.min[0]), float(quantization.max[0]))
    return recorded


def with_ranges(flatbuffer, ranges):
    """The flatbuffer with each {tensor index: (min, max)} written as that tensor's recorded range."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    tensors = model.subgraphs[SUBGRAPH].tensors
    for index, (lo, hi) in ranges.items():
        tensors[index].quantization.min = np.array([lo], dtype=np.float32)
        tensors[index].quantization.max = np.array([hi], dtype=np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_outputs(flatbuffer, indices):
    """The flatbuffer with the main subgraph's `indices` added to its outputs (in LiteRT's default XNNPACK
    delegate a graph output is written out; other intermediate tensors live only inside the delegate)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    subgraph = model.subgraphs[SUBGRAPH]
    present = {int(index) for index in subgraph.outputs}
    added = [int(index) for index in indices if int(index) not in present]
    subgraph.outputs = np.array([*map(int, subgraph.outputs), *added], dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _invoked(flatbuffer, sample_inputs, indices):
    """Per calibration sample, the interpreter after running it on the float flatbuffer, `indices` made graph
    outputs (`with_outputs`) so LiteRT's fast XNNPACK kernels compute them (TF's calibrator and
    `experimental_preserve_all_tensors` run the builtin kernels). ResNet-50, 224 x 224, 2 threads, Xeon AVX-512:
    57.6 ms a sample with its 79 calibrated tensors as outputs (46.8 plain) against 131 with every tensor kept."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=with_outputs(flatbuffer, indices), num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    inputs = [detail["index"] for detail in interpreter.get_input_details()]
    for sample in sample_inputs():
        for index, value in zip(inputs, sample):
            value = np.asarray(value)
            if tuple(interpreter.get_tensor(index).shape) != value.shape:
                interpreter.resize_tensor_input(index, value.shape)
                interpreter.allocate_tensors()
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        yield interpreter


def activation_batches(flatbuffer, sample_inputs, indices):
    """Per calibration sample, {tensor index: values (a copy)} of `indices`, from the float flatbuffer in LiteRT."""
    for interpreter in _invoked(flatbuffer, sample_inputs, indices):
        yield {index: interpreter.get_tensor(index) for index in indices}


def _mlir_int8(flatbuffer, input_type, output_type, allow_float, float_nodes=()):
    from tensorflow.lite.python.convert import mlir_quantize

    return mlir_quantize(flatbuffer, input_data_type=input_type, output_data_type=output_type,
                         denylisted_nodes=list(float_nodes) or None)


def _wrapper_int16(flatbuffer, input_type, output_type, allow_float, float_nodes=()):
    if float_nodes:
        raise ValueError("float nodes (selective fallback) apply to int8 only")
    from tensorflow.lite.python.optimize.calibrator import _calibration_wrapper

    wrapper = _calibration_wrapper.CalibrationWrapper(flatbuffer, [], [])
    number = lambda dtype: np.dtype(dtype.as_numpy_dtype).num  # noqa: E731
    return wrapper.QuantizeModel(number(input_type), number(output_type), allow_float, np.dtype("int16").num,
                                 np.dtype("int64").num, False, False)


REQUANTIZE = {"int8": _mlir_int8, "int16x8": _wrapper_int16}  # as lite.py: int8 -> MLIR, int16 -> the wrapper


def _sample_inputs(converter):
    dataset = converter.representative_dataset
    return getattr(dataset, "input_gen", dataset)  # lite.py wraps it in a RepresentativeDataset once used


def calibrated(converter):
    """(float flatbuffer with recorded min/max, input type, output type, allow_float) of a configured converter."""
    import tensorflow as tf

    input_type, output_type = converter.inference_input_type, converter.inference_output_type
    supported = set(converter.target_spec.supported_ops)
    allow_float = bool(supported & {tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS})
    converter.inference_input_type = converter.inference_output_type = tf.float32  # types apply at quantization
    converter._experimental_calibrate_only = True
    return converter.convert(), input_type or tf.float32, output_type or tf.float32, allow_float


def graph_io(flatbuffer):
    """Tensor indices of the main subgraph's inputs and outputs."""
    from tensorflow.lite.tools import flatbuffer_utils

    subgraph = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer)).subgraphs[SUBGRAPH]
    return {int(index) for index in [*subgraph.inputs, *subgraph.outputs]}


def minmax_ranges(flatbuffer, sample_inputs, indices):
    """{tensor index: (min, max)} of `indices` over every calibration sample (one streaming pass; each tensor
    is read in place, a view released before the next sample runs: 64 ms a ResNet-50 sample, 97 with copies)."""
    lows, highs = dict.fromkeys(indices, np.inf), dict.fromkeys(indices, -np.inf)
    for interpreter in _invoked(flatbuffer, sample_inputs, indices):
        for index in indices:
            values = interpreter.tensor(index)()
            lows[index] = min(lows[index], float(values.min()))
            highs[index] = max(highs[index], float(values.max()))
            del values
    return {index: (lows[index], highs[index]) for index in indices}


def method_ranges(flatbuffer, sample_inputs, method, scheme):
    """{tensor index: (lo, hi)} of `method` for every tensor the calibrator marked in `flatbuffer`: min/max over
    the samples, then the method's threshold (the graph's inputs and outputs keep their min/max,
    `export.calibration.ranges`)."""
    extremes = minmax_ranges(flatbuffer, sample_inputs, list(recorded_ranges(flatbuffer)))
    if methods.METHODS[method].native:
        return extremes
    histograms = methods.collect(extremes, activation_batches(flatbuffer, sample_inputs, list(extremes)))
    return methods.ranges(method, histograms, scheme, kept=graph_io(flatbuffer))


def _first_sample(sample_inputs):
    def first():
        yield next(iter(sample_inputs()))

    return first


def convert(converter, precision, method=methods.DEFAULT_METHOD, float_nodes=(), more_float_nodes=None):
    """The flatbuffer of a configured `converter` at `precision`, activation ranges by calibration `method`,
    the int8 ops whose output tensors `float_nodes` names kept in float (the quantizer's denylisted nodes), and
    those `more_float_nodes(float flatbuffer)` names (`export.converters.tflite.small_conv_prefix`).

    Uncalibrated precisions are `converter.convert()` as it is.
    """
    if precision not in REQUANTIZE:
        return converter.convert()
    method = methods.check_method(method)
    sample_inputs = _sample_inputs(converter)
    converter.representative_dataset = _first_sample(sample_inputs)  # marks the tensors; step 2 calibrates
    flatbuffer, input_type, output_type, allow_float = calibrated(converter)
    float_nodes = list(dict.fromkeys([*float_nodes, *(more_float_nodes(flatbuffer) if more_float_nodes else ())]))
    ranges = method_ranges(flatbuffer, sample_inputs, method, methods.SCHEMES[("tflite", precision)])
    return REQUANTIZE[precision](with_ranges(flatbuffer, ranges), input_type, output_type, allow_float, float_nodes)
