"""SavedModel -> `<name>_model_data.cc` + `.h` for TensorFlow Lite Micro (the `micro` int8 row of export.formats).

The flatbuffer is the TFLite int8 conversion with int8 input and output (`export.converters.tflite`; reused
from `context.cache` when the same run already built it), rendered by `export.micro.source` with the facts
the firmware needs (`facts`: arena estimate, ops and their resolver methods, input/output quantization).

Example:
    >>> write(context, "int8", "out/resnet20_model_data.cc")  # also writes out/resnet20_model_data.h  # doctest: +SKIP
    >>> manifest_facts("out/resnet20_model_data.cc")["arena"]["arena_bytes"]  # doctest: +SKIP
    45488
"""
import hashlib
import os

import numpy as np

from export.core.files import write_bytes
from export.micro import source


def int8_flatbuffer(context):
    """The TFLite int8 flatbuffer with int8 input/output of `context` (converted once per run)."""
    from export.converters import tflite

    if tflite.INT8_IO_CACHE_KEY not in context.cache:
        context.cache[tflite.INT8_IO_CACHE_KEY] = tflite.convert(context.saved_model_dir, "int8",
                                                                 context.calibration, int8_io=True,
                                                                 method=context.calibration_method)
    return context.cache[tflite.INT8_IO_CACHE_KEY]


def _tensor(detail):
    scale, zero_point = detail["quantization"]
    return {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None}


def facts(flatbuffer):
    """What the header states about `flatbuffer`: length, sha256, arena estimate, "methods": {op: resolver
    method or None} in order of first use, and the (single) input and output tensor."""
    from export.micro.arena import estimate_arena
    from export.micro.ops import resolver_methods
    from export.targets import read_graph

    graph = read_graph(flatbuffer)
    (input_index, *_), (output_index, *_) = sorted(graph["inputs"]), sorted(graph["outputs"])
    return {"length": len(flatbuffer), "sha256": hashlib.sha256(flatbuffer).hexdigest(),
            "arena": estimate_arena(graph), "methods": resolver_methods(op["op_name"] for op in graph["ops"]),
            "input": _tensor(graph["tensors"][input_index]), "output": _tensor(graph["tensors"][output_index])}


def manifest_facts(path):
    """What the manifest records about the `.cc` at `path`: its header, symbol, array length, arena estimate
    and ops (from the array it holds, so they describe exactly the shipped bytes)."""
    described = facts(source.read_array(path))
    return {"header": os.path.basename(source.header_path(path)), "symbol": source.symbol_for(path),
            "array_length": described["length"], "arena": described["arena"], "ops": list(described["methods"])}


def write(context, precision, path):
    """The export.formats contract: `path` (`.cc`) and the header beside it, for the int8 flatbuffer."""
    flatbuffer = int8_flatbuffer(context)
    symbol, header = source.symbol_for(path), source.header_path(path)
    write_bytes(header, source.render_header(symbol, facts(flatbuffer)).encode("ascii"))
    write_bytes(path, source.render_source(flatbuffer, symbol, os.path.basename(header)).encode("ascii"))
    return path

