"""Edge-target checks for a .tflite file: list its ops and flag what a target cannot run.

Targets (a data table, `TARGETS`):
- generic: any LiteRT CPU runtime; only dynamic shapes and size are flagged.
- edgetpu: Edge TPU-style int8 accelerators. Every op must compute in int8/uint8: an op reading or
  writing a float (or int16) tensor is flagged, except the QUANTIZE of a model input and the DEQUANTIZE of a
  model output (they run on the CPU at the edges of a full-int8 model with float I/O).
- gpu: ops outside the LiteRT GPU delegate's operation list (`GPU_DELEGATE_OPS`) would fall back to CPU.
- micro: ops outside the TensorFlow Lite Micro op resolver (`MICRO_OPS`, from `export.micro.ops`); micro also
  caps the flatbuffer size (`MICRO_DEFAULT_MAX_SIZE` unless `max_size` is given) since the model must fit in MCU
  flash. A TFLM source (`<name>_model_data.cc`, `--format micro`) is checked by the array it holds.
Every target flags dynamic shapes (a -1 in a tensor's shape signature) and a file larger than `max_size`.
Ops are read from the flatbuffer with the LiteRT interpreter (`_get_ops_details`, no allocation needed).

Example:
    >>> import keras, tempfile
    >>> from export.converters.tflite import convert
    >>> from export.serving_graph import to_saved_model
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()])
    >>> path = os.path.join(tempfile.mkdtemp(), "model_fp32.tflite")
    >>> _ = open(path, "wb").write(convert(to_saved_model(model, path + ".saved_model")["path"], "fp32"))
    >>> report = check_tflite(path, "edgetpu")  # a float file: its ops compute in float
    >>> report["passed"], report["ops"]
    (False, [{'op': 'CONV_2D', 'count': 1}, {'op': 'RESHAPE', 'count': 1}])
"""
import collections
import os

import numpy as np

from export.core.errors import UserError
from export.formats import FORMATS
from export.micro.ops import MICRO_OPS  # TFLM builtin kernels (the MicroMutableOpResolver table)

# LiteRT GPU delegate (tflite/delegates/gpu/common/model_builder.cc operation parsers; the documented list
# at ai.google.dev/edge/litert/performance/gpu is a subset).
GPU_DELEGATE_OPS = frozenset("""
ABS ADD AVERAGE_POOL_2D BATCH_MATMUL CAST CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTHWISE_CONV_2D
DEPTH_TO_SPACE DEQUANTIZE DIV ELU EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GREATER
GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC MAXIMUM MAX_POOL_2D MEAN
MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN
REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SELECT_V2 SIN
SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TILE
TRANSPOSE TRANSPOSE_CONV
""".split())

MICRO_DEFAULT_MAX_SIZE = 1 << 20  # 1 MiB: a typical microcontroller flash budget for the model
NON_INTEGER_DTYPES = ("float16", "float32", "float64", "int16")  # what an int8 accelerator cannot compute in
EDGE_OPS = {"QUANTIZE": "inputs", "DEQUANTIZE": "outputs"}  # allowed float at the model's input/output edge

TARGETS = {
    "generic": {"supported_ops": None, "integer_only": False, "default_max_size": None},
    "edgetpu": {"supported_ops": None, "integer_only": True, "default_max_size": None},
    "gpu": {"supported_ops": GPU_DELEGATE_OPS, "integer_only": False, "default_max_size": None},
    "micro": {"supported_ops": MICRO_OPS, "integer_only": False, "default_max_size": MICRO_DEFAULT_MAX_SIZE},
}


def check_tflite(path, target="generic", max_size=None):
    """Check the .tflite file (or TFLM source `.cc` of `export.micro.source`) at `path` against `target`;
    returns {"target", "ops": [{"op", "count"}] sorted by name, "problems": [one line each], "passed": bool}.
    The size checked is the flatbuffer's (for a `.cc`, its array: what the microcontroller's flash holds).

    Example:
        >>> sorted(TARGETS)
        ['edgetpu', 'generic', 'gpu', 'micro']
    """
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r}; allowed: {', '.join(sorted(TARGETS))}")
    if not os.path.isfile(path):
        raise UserError(f"TFLite file {os.fspath(path)!r} does not exist")
    spec = TARGETS[target]
    flatbuffer = model_bytes(path)
    graph = read_graph(flatbuffer)
    problems = dynamic_shape_problems(graph)
    problems += size_problems(len(flatbuffer), max_size or spec["default_max_size"])
    if spec["supported_ops"] is not None:
        problems += unsupported_op_problems(graph, spec["supported_ops"], target)
    if spec["integer_only"]:
        problems += float_op_problems(graph)
    return {"target": target, "ops": op_counts(graph), "problems": problems, "passed": not problems}


def model_bytes(path):
    """The flatbuffer of a .tflite file, or the array of a TFLM `.cc` source (`export.micro.source.read_array`)."""
    if os.fspath(path).endswith(FORMATS["micro"].suffix):
        from export.micro.source import read_array

        return read_array(path)
    with open(path, "rb") as handle:
        return handle.read()


def read_graph(flatbuffer):
    """{"ops": [{"op_name", "inputs", "outputs"}] in execution order, "tensors": {index: detail}, "inputs",
    "outputs"} of a flatbuffer (bytes) or a .tflite path."""
    from ai_edge_litert.interpreter import Interpreter

    source = {"model_content": bytes(flatbuffer)} if isinstance(flatbuffer, (bytes, bytearray)) else {
        "model_path": os.fspath(flatbuffer)}
    interpreter = Interpreter(**source)
    return {
        "ops": interpreter._get_ops_details(),
        "tensors": {t["index"]: t for t in interpreter.get_tensor_details()},
        "inputs": {t["index"] for t in interpreter.get_input_details()},
        "outputs": {t["index"] for t in interpreter.get_output_details()},
    }


def op_counts(graph):
    counts = collections.Counter(op["op_name"] for op in graph["ops"])
    return [{"op": name, "count": counts[name]} for name in sorted(counts)]


def dynamic_shape_problems(graph):
    """One line per model input/output tensor whose shape has an unknown (-1) dimension."""
    problems = []
    for index in sorted(graph["inputs"] | graph["outputs"]):
        tensor = graph["tensors"][index]
        signature = tensor.get("shape_signature", tensor["shape"])
        if any(int(d) < 0 for d in signature):
            problems.append(f"dynamic shape {list(map(int, signature))} on tensor {tensor['name']!r}")
    return problems


def size_problems(size, max_size):
    if max_size and size > max_size:
        return [f"file size {size:,} bytes exceeds the limit of {int(max_size):,} bytes"]
    return []


def unsupported_op_problems(graph, supported_ops, target):
    counts = collections.Counter(op["op_name"] for op in graph["ops"] if op["op_name"] not in supported_ops)
    return [f"{name} (x{counts[name]}) is not supported by the {target} target" for name in sorted(counts)]


def tensor_dtype(graph, index):
    return np.dtype(graph["tensors"][index]["dtype"]).name


def is_edge_conversion(op, graph):
    """QUANTIZE of a model input or DEQUANTIZE into a model output: float only at the model's edge."""
    side = EDGE_OPS.get(op["op_name"])
    if side == "inputs":
        return all(i in graph["inputs"] for i in op["inputs"] if i >= 0)
    if side == "outputs":
        return all(o in graph["outputs"] for o in op["outputs"] if o >= 0)
    return False


def float_op_problems(graph):
    """One line per op type that reads or writes float/int16 tensors (besides edge QUANTIZE/DEQUANTIZE)."""
    offenders = collections.defaultdict(set)
    for op in graph["ops"]:
        if is_edge_conversion(op, graph):
            continue
        dtypes = {tensor_dtype(graph, i) for i in [*op["inputs"], *op["outputs"]] if i >= 0}
        for dtype in sorted(dtypes & set(NON_INTEGER_DTYPES)):
            offenders[op["op_name"]].add(dtype)
    return [f"{name} computes in {'/'.join(sorted(dtypes))}; the edgetpu target needs int8/uint8 ops"
            for name, dtypes in sorted(offenders.items())]
