"""SavedModel -> ONNX (tf2onnx, pinned opset) and ONNX -> int8 QDQ / dynamic-int8 (onnxruntime.quantization).

The serving signature is frozen and its XLA-compiled sub-functions (Keras wraps grouped convolutions in
`jit_compile=True` functions) are made inlinable before tf2onnx sees the graph; otherwise tf2onnx leaves an
unsupported `StatefulPartitionedCall` (onnx/tensorflow-onnx#2099). Input/output names match the SavedModel
signature (every output of a multi-output model, named by its signature key). The batch dimension follows the
SavedModel (1 unless exported with a dynamic batch).

`write(context, precision, path)` is the export.formats contract: fp32 is the tf2onnx graph, int8 the static QDQ
quantization of it (or the graph itself for a QAT model, whose fake-quant ops already are QDQ pairs), dynamic
the dynamic quantization of it; the fp32 graph is converted once per run and shared.

Example:
    >>> import keras, numpy as np, tempfile
    >>> from export.converters import ConvertContext
    >>> from export.serving_graph import to_saved_model
    >>> work = tempfile.mkdtemp()
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    >>> saved = to_saved_model(model, os.path.join(work, "saved_model"))["path"]
    >>> x_train = np.random.default_rng(0).random((20, 8, 8, 3), dtype="float32")
    >>> context = ConvertContext(saved, work, calibration=x_train)
    >>> path = write(context, "int8", os.path.join(work, "model_int8.onnx"))  # to_onnx once, then quantize_int8
    >>> sorted(os.listdir(work))
    ['model_fp32.onnx', 'model_int8.onnx', 'saved_model']
"""
import contextlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from export.calibration import DEFAULT_METHOD, METHODS, check_method
from export.converters import onnx_ranges
from export.raw_input import sample_dtype

OPSET = 17
XLA_ATTRIBUTES = ("_XlaMustCompile", "_XlaCompile", "_XlaScope", "_noinline")


def _strip_xla_attributes(graph_def):
    """Let grappler inline functions that Keras marked as XLA-compiled (in place)."""
    def strip(attributes):
        for key in XLA_ATTRIBUTES:
            if key in attributes:
                del attributes[key]

    for node in graph_def.node:
        strip(node.attr)
    for function in graph_def.library.function:
        strip(function.attr)
        for node in function.node_def:
            strip(node.attr)
    return graph_def


def _frozen_serving_graph(saved_model_dir):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(saved_model_dir)  # keep alive: the signature references its variables
    signature = loaded.signatures["serving_default"]
    (input_name, spec), = signature.structured_input_signature[1].items()

    @tf.function
    def serve(x):
        return dict(signature(**{input_name: x}))  # every output, under its signature key

    concrete = serve.get_concrete_function(tf.TensorSpec(spec.shape, spec.dtype, name=input_name))  # uint8: --raw-input
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    del loaded
    graph_def = _strip_xla_attributes(frozen.graph.as_graph_def(add_shapes=True))
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    keys = tf.nest.flatten({key: key for key in concrete.structured_outputs})  # the order of frozen.outputs
    outputs = [t.name for t in frozen.outputs]
    return graph_def, inputs, outputs, {inputs[0]: input_name, **dict(zip(outputs, keys))}


@contextlib.contextmanager
def _tensorflow_deprecations_muted():
    """tf2onnx calls TF APIs that log deprecation warnings on every conversion; keep them off the terminal."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _lean_tf2onnx_optimizers():
    """tf2onnx's graph optimizers without their two memory costs; the same ONNX graph comes out (ResNet-50:
    byte-identical; tests compare op counts, weights and outputs, as tf2onnx's node order varies run to run).

    1. `update_proto` after every optimizer re-serializes every Const node's tensor into its NodeProto, whose
       protobuf arena keeps each old copy: ResNet-50 (94 MB of weights) grew 90 MB per optimizer pass, 24
       passes, +2.1 GB. Const nodes are synced once, when the model is made (`Graph.make_graph` calls
       `update_proto` for every node after the optimizers).
    2. catch_errors deep-copies the whole graph before each optimizer to roll back a failing one (+1.1 GB,
       +10 s). Off here; `to_onnx` reruns tf2onnx's own safe path if an optimizer fails.
    Measured on ResNet-50 (Xeon AVX-512, 2 cores): peak 5.4 -> 3.1 GB (the rest is grappler's), 26 -> 13 s.
    """
    from tf2onnx import constants, convert, graph, optimizer

    original_update, original_optimize = graph.Node.update_proto, optimizer.optimize_graph
    optimizing = [False]

    def update_proto(node, external_tensor_storage=None):
        if not (optimizing[0] and node.type == "Const"):
            original_update(node, external_tensor_storage)

    def optimize_graph(*args, **kwargs):
        optimizing[0] = True
        try:
            return original_optimize(*args, **kwargs)
        finally:
            optimizing[0] = False

    previous = os.environ.get(constants.ENV_TF2ONNX_CATCH_ERRORS)
    os.environ[constants.ENV_TF2ONNX_CATCH_ERRORS] = "FALSE"
    graph.Node.update_proto, convert.optimizer.optimize_graph = update_proto, optimize_graph
    try:
        yield
    finally:
        graph.Node.update_proto, convert.optimizer.optimize_graph = original_update, original_optimize
        if previous is None:
            del os.environ[constants.ENV_TF2ONNX_CATCH_ERRORS]
        else:
            os.environ[constants.ENV_TF2ONNX_CATCH_ERRORS] = previous


def to_onnx(saved_model_dir, path, opset=OPSET, target=None):
    """Convert the SavedModel's serving signature to an ONNX file at `path` (opset `opset`).

    A QAT graph (one with QuantizeLinear nodes) gets its weights as explicit per-channel 8-bit values
    (`explicit_weight_qdq`, typed for `target`: `export.onnx_targets`, None: this host's), so onnxruntime runs the
    trained quantization instead of re-quantizing.
    """
    import tf2onnx

    with _tensorflow_deprecations_muted():
        graph_def, inputs, outputs, renames = _frozen_serving_graph(saved_model_dir)
        options = dict(input_names=inputs, output_names=outputs, opset=opset, tensors_to_rename=renames,
                       output_path=os.fspath(path))
        try:
            with _lean_tf2onnx_optimizers():
                tf2onnx.convert.from_graph_def(graph_def, **options)
        except Exception:  # noqa: BLE001 - an optimizer failed without catch_errors: tf2onnx's own path skips it
            tf2onnx.convert.from_graph_def(graph_def, **options)
    explicit_weight_qdq(path, target)
    return path


# op -> (weight input index, per-channel axis of that weight, or the attribute that transposes it)
WEIGHT_INPUTS = {"Conv": (1, 0), "Gemm": (1, "transB"), "MatMul": (1, 1)}
INT8_WEIGHT_LEVELS = 127  # symmetric narrow range, as tfmot's QAT weights
WEIGHT_ZERO_POINTS = {"int8": 0, "uint8": 128}  # symmetric 8-bit weights: int8 around 0, uint8 around 128


def _weight_axis(node, rule):
    if isinstance(rule, int):
        return rule
    transposed = any(a.name == rule and a.i for a in node.attribute)
    return 0 if transposed else 1


GRID_TOLERANCE = 1e-3  # |w/scale - round(w/scale)| of a folded fake-quant weight: float32 rounding, ~1e-5


def eight_bit_grid(weight, axis):
    """(scale, integer values) when `weight` holds symmetric 8-bit values (a QAT fake-quant folded by tf2onnx),
    per channel along `axis` (tfmot's Conv kernels) or per tensor (its Dense kernels); None otherwise.

    Example:
        >>> scale, values = eight_bit_grid(np.array([[0.5, -1.27], [0.01, 0.02]], "float32"), axis=1)
        >>> scale.shape, values[:, 0].tolist()
        ((), [50.0, 1.0])
    """
    for reduce_axes in (tuple(i for i in range(weight.ndim) if i != axis), None):
        scale = np.abs(weight).max(axis=reduce_axes, keepdims=True) / INT8_WEIGHT_LEVELS
        scale = np.where(scale > 0, scale, 1.0).astype("float32")
        values = weight / scale
        if np.all(np.abs(values - np.round(values)) <= GRID_TOLERANCE):
            return scale.squeeze() if reduce_axes is None else scale.reshape(-1), np.round(values)
    return None


def _dequantized_weight(graph, name, scale, values, axis, weights_type):
    """Add `name`'s 8-bit initializers (`weights_type`, symmetric) and their DequantizeLinear; returns the node."""
    from onnx import helper, numpy_helper

    zero_point = WEIGHT_ZERO_POINTS[weights_type]
    stored = (np.clip(values, -INT8_WEIGHT_LEVELS, INT8_WEIGHT_LEVELS) + zero_point).astype(weights_type)
    zeros = np.full(scale.shape, zero_point, weights_type)
    graph.initializer.extend([numpy_helper.from_array(stored, f"{name}_int8"),
                              numpy_helper.from_array(scale, f"{name}_int8_scale"),
                              numpy_helper.from_array(zeros, f"{name}_int8_zero")])
    per_channel = {"axis": axis} if scale.ndim else {}
    return helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_int8_scale", f"{name}_int8_zero"],
                            [f"{name}_dequantized"], name=f"{name}_dequantize", **per_channel)


def explicit_weight_qdq(path, target=None):
    """Give every float constant weight of a QAT graph that lies on a symmetric 8-bit grid (`eight_bit_grid`) an
    8-bit DequantizeLinear of its own; a graph without QuantizeLinear (not QAT) is left untouched.

    tf2onnx folds a QAT model's weight fake-quant into float constants. onnxruntime's QDQ optimizer then
    re-quantizes such weights itself (WeightBiasQuantization, ORT >= 1.20): per tensor (on a tiny QAT ResNet 2 %
    top-1 agreement lost) and as int8, which saturates with uint8 activations on AVX2 (the Dense layer after the
    pooling, whose input is no DequantizeLinear: 59 % agreement on an AMD EPYC). These values are exact; their
    type is the target's `qat_weights` (`export.onnx_targets`): int8, or uint8 around 128 where int8 saturates.
    """
    import onnx
    from onnx import numpy_helper

    from export.onnx_targets import TARGETS, resolve_target

    weights_type = TARGETS[resolve_target(target)].qat_weights
    model = onnx.load(os.fspath(path))
    graph = model.graph
    if not any(node.op_type == "QuantizeLinear" for node in graph.node):
        return path
    initializers = {init.name: init for init in graph.initializer}
    added = []
    for node in graph.node:
        rule = WEIGHT_INPUTS.get(node.op_type)
        if rule is None or len(node.input) <= rule[0] or node.input[rule[0]] not in initializers:
            continue
        name, axis = node.input[rule[0]], _weight_axis(node, rule[1])
        grid = eight_bit_grid(numpy_helper.to_array(initializers[name]).astype("float32"), axis)
        if grid is not None:
            added.append(_dequantized_weight(graph, name, *grid, axis, weights_type))
            node.input[rule[0]] = f"{name}_dequantized"
    if added:
        nodes = added + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, os.fspath(path))
    return path


class _SampleReader:
    """onnxruntime CalibrationDataReader over preprocessed samples (uint8 pixels for --raw-input), in the model's
    batch size."""

    def __init__(self, samples, input_name, batch):
        self.batches = iter([samples[i:i + batch] for i in range(0, len(samples), batch)])
        self.input_name = input_name

    def get_next(self):
        chunk = next(self.batches, None)
        return None if chunk is None else {self.input_name: np.asarray(chunk, dtype=sample_dtype(chunk))}


def _input_name_and_batch(path):
    import onnx

    graph_input = onnx.load(os.fspath(path), load_external_data=False).graph.input[0]
    batch_dim = graph_input.type.tensor_type.shape.dim[0]
    return graph_input.name, batch_dim.dim_value if batch_dim.HasField("dim_value") else 32


QUANT_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}  # export.onnx_targets type names -> onnxruntime QuantType


def quantize_int8(fp32_path, path, calibration, method=DEFAULT_METHOD, float_nodes=(), target=None,
                  small_convs_float=False):
    """Static int8 QDQ quantization (per-channel weights) after `quant_pre_process`, calibrated on samples;
    nodes named in `float_nodes` stay float (selective fallback, `export.fallback`).

    `target` (`export.onnx_targets.TARGETS`, None: this host's) picks the activation/weight types and 7-bit
    weights: U8S8 for VNNI x86, U8S8 with 7-bit weights for AVX2 x86 (cannot saturate), S8S8 for ARM; the
    table gives each row's reason and measurements. `method` (`export.calibration`): minmax is onnxruntime's
    MinMax calibration; the others quantize with the ranges `export.converters.onnx_ranges` computes, passed
    as a calibration cache.

    Speed (`export.converters.onnx_passes`): zero Pads between Q/DQ of one scale run on integers (exact);
    with `small_convs_float` (the export's int8 file) the nodes before the first Conv with the target's
    `float_below_channels` output channels stay float. Off by default, so a caller that studies every layer's
    int8 error (`export.quantreport`) sees every layer quantized.
    """
    from onnxruntime import quantization as q

    from export.converters import onnx_passes
    from export.onnx_targets import TARGETS, resolve_target

    scheme = TARGETS[resolve_target(target)]
    input_name, batch = _input_name_and_batch(fp32_path)
    readers = lambda: _SampleReader(calibration, input_name, batch)  # noqa: E731
    with tempfile.TemporaryDirectory() as work:
        prepared = os.path.join(work, "prepared.onnx")
        q.quant_pre_process(os.fspath(fp32_path), prepared, skip_symbolic_shape=True)
        if small_convs_float:
            float_nodes = [*float_nodes, *onnx_passes.float_prefix(prepared, scheme.float_below_channels)]
        cache = None
        if not METHODS[check_method(method)].native:
            cache = onnx_ranges.write_cache(prepared, readers, method, os.path.join(work, "ranges.json"), work)
        q.quantize_static(prepared, os.fspath(path), readers(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=getattr(q.QuantType, QUANT_TYPES[scheme.activations]),
                          weight_type=getattr(q.QuantType, QUANT_TYPES[scheme.weights]),
                          reduce_range=scheme.reduce_range, extra_options=dict(scheme.extra_options),
                          calibrate_method=q.CalibrationMethod.MinMax, calibration_cache_path=cache,
                          nodes_to_exclude=list(dict.fromkeys(float_nodes)))
    onnx_passes.integer_zero_pads(path)
    return path


def first_conv_name(path):
    """Name of the first Conv node (the one that sees the image), or None; ONNX nodes are topologically sorted."""
    return next(iter(first_conv_names(path)), None)


def first_conv_names(path, count=1):
    """Names of the first `count` Conv nodes, in graph (topological) order."""
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "Conv"][:count]


def quantize_dynamic(fp32_path, path, float_convs=1):
    """Dynamic quantization: 8-bit weights, activations quantized to uint8 at run time (ConvInteger/MatMulInteger).

    - Weights are uint8 with a symmetric range (zero point 128), so every kernel runs U8U8, which onnxruntime
      computes exactly on every CPU (measured bit-exact against numpy on AVX-512 VNNI; AVX2 widens to 16 bits).
      Signed weights would run U8S8, which saturates in VPMADDUBSW on AVX2 CPUs without VNNI.
    - The first convolution stays float: it sees the normalized image through one per-tensor uint8 range
      computed per call, and it caused every top-1 flip of the test model (98.9 % agreement, -1.1 points with
      it quantized; 100 % without). It holds a few thousand weights (ResNet-50: 9,408 of 25.6 M).
      `float_convs=2` in a --raw-input graph, whose first Conv is the baked normalization (`export.raw_input`).
    - Slow on every measured CPU (marked `slow_kernels` in `export.formats`): ConvInteger quantizes each
      activation per call and runs im2col + MatMulInteger. Shipped default, Xeon AVX-512 VNNI, 1 thread, same
      run: fp32 0.39 ms, dynamic U8U8 0.78 ms, dynamic with int8 weights 2.20 ms; static int8 (U8S8) 0.36 ms.
    """
    from onnxruntime import quantization as q

    q.quantize_dynamic(os.fspath(fp32_path), os.fspath(path), weight_type=q.QuantType.QUInt8,
                       nodes_to_exclude=first_conv_names(fp32_path, float_convs), extra_options={"WeightSymmetric": True})
    return path


def float_graph(context):
    """The fp32 ONNX graph of the context's SavedModel, converted once and kept in the work dir."""
    if "onnx_fp32" not in context.cache:
        path = os.path.join(context.work_dir, "model_fp32.onnx")
        context.cache["onnx_fp32"] = to_onnx(context.saved_model_dir, path, target=context.onnx_target)
    return context.cache["onnx_fp32"]


def _write_fp32(context, path):
    shutil.copyfile(float_graph(context), path)


def _write_int8(context, path):
    if context.qat:  # a QAT graph already carries QuantizeLinear/DequantizeLinear with the trained ranges
        shutil.copyfile(float_graph(context), path)
    else:
        quantize_int8(float_graph(context), path, context.calibration, context.calibration_method,
                      context.float_nodes, context.onnx_target, small_convs_float=True)


def _write_dynamic(context, path):
    quantize_dynamic(float_graph(context), path, float_convs=2 if context.raw_input else 1)


WRITERS = {"fp32": _write_fp32, "int8": _write_int8, "dynamic": _write_dynamic}


def write(context, precision, path):
    """The export.formats contract: the ONNX file of `context` at `precision` (fp32, int8, dynamic) at `path`."""
    WRITERS[precision](context, path)
    return path


def embed_metadata(path, entries):
    """Store `entries` (str -> JSON-able) in the ONNX file's metadata_props (rewrites the file)."""
    import onnx

    model = onnx.load(os.fspath(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in entries.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, text
    onnx.save(model, os.fspath(path))
    return path


def read_metadata(path):
    """The ONNX file's metadata_props as a dict of strings."""
    import onnx

    return {p.key: p.value for p in onnx.load(os.fspath(path), load_external_data=False).metadata_props}
