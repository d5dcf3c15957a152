"""Selective float fallback: keep the worst layers of a failing int8 artifact in float until its gate passes.

The quantization report (`export.quantreport`) ranks an artifact's quantized ops by their error ALONE (each op
run on the float model's inputs), so its order does not change when an earlier layer is fixed. The fallback
takes that order greedily: try 1 layer in float, then 2, ... up to `MAX_FLOAT_LAYERS`, re-converting and
re-verifying each time, and stops at the first artifact that passes. A layer's error alone includes the
rounding of its input, and that rounding happens where the input is produced: so a layer is kept in float
together with the op that produces its input (walking up through ops that only move values: pad, pooling,
transpose, reshape, quantize/dequantize), as measured on a model with one channel x1000 before three convs:
TFLite int8 top-1 agreement 9 % plain, 17 % with only the three convs in float, 99 % with their producers too.

Full-int8 targets (`edgetpu`, `micro`) never fall back: a float op would not run there.

Example:
    >>> float_nodes_for(["t_b"], [("a", ["x"], ["t_a"], "Conv"), ("b", ["t_a"], ["t_b"], "Conv")], {"t_b": "b"})
    ['b', 'a']
"""
MAX_FLOAT_LAYERS = 6  # conversions tried at most per artifact (each is one conversion + one verification)
FALLBACK_ROWS = (("tflite", "int8"), ("onnx", "int8"))
FULL_INT8_TARGETS = ("edgetpu", "micro")
PASS_THROUGH_OPS = frozenset({"PAD", "PADV2", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "TRANSPOSE", "QUANTIZE",
                              "DEQUANTIZE", "Pad", "MaxPool", "AveragePool", "Reshape", "Transpose",
                              "QuantizeLinear", "DequantizeLinear"})
DEQUANTIZED_SUFFIX = "_DequantizeLinear_Output"  # onnxruntime's name for a QDQ pair's float output


def applies(row, target, qat=False):
    """True when `row` (a Variant) may fall back: TFLite/ONNX int8 of a PTQ model, no full-int8 target."""
    return (row.format, row.precision) in FALLBACK_ROWS and target not in FULL_INT8_TARGETS and not qat


def narrow_prefix(nodes, min_channels):
    """Names of the nodes before the first convolution with at least `min_channels` output channels, in graph
    order; [] when the first convolution already has that many or none has (nothing would stay int8).

    `nodes`: [(name, output channels when the node is a convolution, else None)] in execution order. One rule for
    both formats' speed prefix (`export.converters.tflite.small_conv_prefix`, `export.converters.onnx_passes
    .float_prefix`): an execution-order prefix holds every ancestor of its nodes, so it is one float region with
    one quantize after it.

    Example:
        >>> narrow_prefix([("stem", 8), ("relu", None), ("wide", 16), ("head", None)], 16)
        ['stem', 'relu']
    """
    names, narrow = [], False
    for name, channels in nodes:
        if channels is not None:
            if channels >= min_channels:
                return names if narrow else []
            narrow = True
        names.append(name)
    return []


def float_nodes_for(tensors, ops, node_of_tensor):
    """Names of the nodes to keep in float for report rows whose output tensors are `tensors`: for
    each row's node and the producer of its activation input, through pass-through ops.

    `ops`: [(node name, input tensor names, output tensor names, op type)]; `node_of_tensor`: {row tensor: node}.
    """
    producer = {tensor: op for op in ops for tensor in op[2]}
    by_name = {op[0]: op for op in ops}
    chosen = []
    for tensor in tensors:
        op = by_name.get(node_of_tensor.get(tensor))
        if op is None:
            continue
        chosen.append(op[0])
        for source in op[1][:1]:  # the activation input (weights and biases come after it)
            upstream = producer.get(source.removesuffix(DEQUANTIZED_SUFFIX))
            while upstream is not None and upstream[3] in PASS_THROUGH_OPS:
                chosen.append(upstream[0])
                upstream = producer.get(upstream[1][0].removesuffix(DEQUANTIZED_SUFFIX)) if upstream[1] else None
            if upstream is not None:
                chosen.append(upstream[0])
    return list(dict.fromkeys(chosen))


def tflite_ops(path):
    """(ops, node_of_tensor) of a .tflite file; a TFLite node is named by its first output tensor."""
    from export.targets import read_graph

    graph = read_graph(path)
    name = {index: tensor["name"] for index, tensor in graph["tensors"].items()}
    ops = [(name[op["outputs"][0]], [name[i] for i in op["inputs"] if i >= 0], [name[o] for o in op["outputs"]],
            op["op_name"]) for op in graph["ops"] if op["outputs"]]
    return ops, {op[2][0]: op[0] for op in ops}


def onnx_ops(path):
    """(ops, node_of_tensor) of an .onnx file."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = [(node.name, list(node.input), list(node.output), node.op_type) for node in graph.node]
    return ops, {output: op[0] for op in ops for output in op[2]}


GRAPH_READERS = {"tflite": tflite_ops, "onnx": onnx_ops}


def candidates(report):
    """The report's rows worst first, one per distinct tensor, as (layer name, tensor name)."""
    seen, ordered = set(), []
    for row in report["rows"]:
        if row["tensor"] not in seen and row["sqnr_db"] is not None:
            seen.add(row["tensor"])
            ordered.append((row["layer"], row["tensor"]))
    return ordered


def fall_back(quantized_path, format, report, attempt, limit=MAX_FLOAT_LAYERS):
    """Greedy fallback: `attempt(float_nodes)` converts and verifies (returns its parity dict); returns
    {"float_layers", "float_nodes", "attempts", "passed", "parity"} of the first passing try, or of the last
    one when none passed within `limit` layers."""
    ops, node_of_tensor = GRAPH_READERS[format](quantized_path)
    ranked = candidates(report)[:limit]
    result = {"float_layers": [], "float_nodes": [], "attempts": 0, "passed": False, "parity": None}
    for count in range(1, len(ranked) + 1):
        layers = [layer for layer, _ in ranked[:count]]
        nodes = float_nodes_for([tensor for _, tensor in ranked[:count]], ops, node_of_tensor)
        parity = attempt(tuple(nodes))
        result = {"float_layers": layers, "float_nodes": nodes, "attempts": count, "passed": parity["passed"],
                  "parity": parity}
        if parity["passed"]:
            break
    return result
