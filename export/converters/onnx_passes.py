"""Exact graph passes on quantized (QDQ) ONNX files that let onnxruntime keep int8 tensors int8.

`integer_zero_pads`: onnxruntime's quantizer writes a zero `Pad` as `DequantizeLinear -> Pad -> QuantizeLinear`
with one scale and zero point on both sides (QDQPad: 0.0 is always representable), but onnxruntime's QDQ
optimizer (1.32) has no rule that drops Q/DQ around Pad, so the Pad runs in float between a dequantize and a
quantize (ResNet-50's pool1 pad: ~1.4 ms of ~27 ms at 1 thread on a Xeon AVX-512 VNNI; the shipped ResNet-20's
two channel pads of its shortcuts) and blocks the QDQ fusion of the MaxPool after it. The pass pads the
integer tensor itself with the zero point as the constant: Q(pad(DQ(q), 0)) == pad(q, zero_point) element for
element, because Q(DQ(q)) == q for equal parameters and Q(0.0) == zero_point.

Example:
    >>> integer_zero_pads("model_int8.onnx")  # doctest: +SKIP
    1
"""
import os

QDQ_PARAMETERS = (1, 2)  # input indices of scale and zero point in QuantizeLinear / DequantizeLinear


def _constant(initializers, name):
    """The numpy value of initializer `name`, or None when it is not an initializer."""
    from onnx import numpy_helper

    return numpy_helper.to_array(initializers[name]) if name in initializers else None


def _same_per_tensor_parameters(dequantize, quantize, initializers):
    """True when both nodes have scalar constant scales and zero points with equal values and dtypes."""
    for index in QDQ_PARAMETERS:
        if len(dequantize.input) <= index or len(quantize.input) <= index:
            return False
        before, after = _constant(initializers, dequantize.input[index]), _constant(initializers, quantize.input[index])
        if before is None or after is None or before.size != 1 or after.size != 1:
            return False
        if before.dtype != after.dtype or before.item() != after.item():
            return False
    return True


def _pads_with_zero(pad, initializers):
    """True for a constant-mode Pad whose constant value is absent or a float 0."""
    mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
    if mode != b"constant":
        return False
    if len(pad.input) < 3 or not pad.input[2]:
        return True
    value = _constant(initializers, pad.input[2])
    return value is not None and value.size == 1 and float(value.item()) == 0.0


def _integer_pad_candidates(graph):
    """(dequantize, pad, quantize) triples that `integer_zero_pads` rewrites."""
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    found = []
    for pad in graph.node:
        if pad.op_type != "Pad" or not _pads_with_zero(pad, initializers):
            continue
        dequantize = producers.get(pad.input[0])
        after = consumers.get(pad.output[0], [])
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or len(after) != 1:
            continue
        quantize, = after
        if quantize.op_type != "QuantizeLinear" or pad.output[0] in outputs:
            continue
        if _same_per_tensor_parameters(dequantize, quantize, initializers):
            found.append((dequantize, pad, quantize))
    return found


def integer_zero_pads_in_model(model):
    """Rewrite every DQ -> zero Pad -> Q of equal parameters in `model` (an onnx.ModelProto, in place) into one
    Pad of the integer tensor with the zero point as its constant; returns how many it rewrote.

    The DequantizeLinear stays when something else reads its output; the QuantizeLinear goes (the Pad writes
    its output tensor).
    """
    graph = model.graph
    rewritten = _integer_pad_candidates(graph)
    removed = set()
    for dequantize, pad, quantize in rewritten:
        quantized_input, zero_point = dequantize.input[0], quantize.input[2]
        pad.input[0] = quantized_input
        while len(pad.input) < 3:
            pad.input.append("")
        pad.input[2] = zero_point
        pad.output[0] = quantize.output[0]
        removed.add(id(quantize))
        if not any(dequantize.output[0] in node.input for node in graph.node) and \
                dequantize.output[0] not in {o.name for o in graph.output}:
            removed.add(id(dequantize))
    kept = [node for node in graph.node if id(node) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    return len(rewritten)


def integer_zero_pads(path):
    """`integer_zero_pads_in_model` on the ONNX file at `path` (rewritten only when something changed);
    returns how many Pads now run on integers."""
    import onnx

    model = onnx.load(os.fspath(path))
    count = integer_zero_pads_in_model(model)
    if count:
        onnx.save(model, os.fspath(path))
    return count


def float_pads(path):
    """Names of the Pad nodes of the file at `path` that read a DequantizeLinear output (run in float)."""
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    return [node.name for node in graph.node if node.op_type == "Pad"
            and getattr(producers.get(node.input[0]), "op_type", None) == "DequantizeLinear"]


def float_convs(path):
    """Names of the Conv/Gemm/MatMul nodes of a QDQ file at `path` whose weight is a float initializer (kept float:
    the small-conv prefix of x86 targets, the fallback's layers); what the manifest lists for an int8 file."""
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [node.name for node in graph.node if node.op_type in ("Conv", "Gemm", "MatMul")
            and len(node.input) > 1 and node.input[1] in initializers]


def conv_output_channels(graph):
    """{Conv node name: output channels} for Convs whose weight is an initializer."""
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    return {node.name: shapes[node.input[1]][0] for node in graph.node
            if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in shapes}


def float_prefix(path, min_channels):
    """Names of the nodes before the first Conv with at least `min_channels` output channels (graph order,
    `export.fallback.narrow_prefix`); [] when `min_channels` is 0. `export.onnx_targets.OnnxTarget
    .float_below_channels` says why (x86: onnxruntime's int8 convolutions with < 16 output channels lose to fp32).

    Example:
        >>> float_prefix("resnet20_fp32.onnx", 16)[:1]  # doctest: +SKIP
        ['Conv__51']
    """
    import onnx

    from export.fallback import narrow_prefix

    if not min_channels:
        return []
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    channels = conv_output_channels(graph)
    return [name for name in narrow_prefix([(node.name, channels.get(node.name)) for node in graph.node],
                                           min_channels) if name]
