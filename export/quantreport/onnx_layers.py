"""Per-op errors of a quantized .onnx (static QDQ or dynamic) against the fp32 .onnx it was quantized from.

onnxruntime's quantizers keep the float graph's tensor names, so a tensor X of the float graph is found by name:

- static QDQ: each quantized activation X is followed by QuantizeLinear -> DequantizeLinear; the row compares
  the DequantizeLinear output (what the next ops read) with the float model's X;
- dynamic: activations stay float (each integer op quantizes its input per call); the row compares X itself,
  for each X computed by a group of nodes holding an integer op (ConvInteger, MatMulInteger).

Quantized graphs run without graph optimization (as written, see `_session`), float ones optimized.
Accumulated error: the quantized graph with those tensors added as outputs. Own error: a "cut" copy whose
ops read the float model's values instead of the quantized graph's: in a QDQ graph the consumers of each
DequantizeLinear output read a copy of the Q/DQ pair fed with the float X; in a dynamic graph every op reads
the float value of each input the float graph has. Each row's own error is then the layer's alone: its
input quantization, weights and output quantization, on the float model's inputs.

Instead of onnxruntime.quantization.qdq_loss_debug (same naming, same SQNR) because that keeps every
activation of every sample in memory and has no own-error measurement (its `qdq_err` is the rounding of X
alone, which misses a layer whose input channels were flattened by the previous tensor's range).

Example:
    >>> measurement = measure("m_fp32.onnx", "m_int8.onnx", x[:64])  # doctest: +SKIP
"""
import os

import numpy as np

from export.quantreport.probes import Measurement, Probe, layers_named
from export.quantreport.stats import ErrorStats

CUT = "#float"  # suffix of the cut graph's inputs that carry the float model's values
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
INPUT_QUANTIZERS = ("DynamicQuantizeLinear",)
INTEGER_OPS = ("ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul")


def _load(path):
    import onnx

    return onnx.load(os.fspath(path))


def _session(model, output_names, literal=False):
    """An onnxruntime CPU session of `model` whose outputs are `output_names` (added when missing).

    `literal`: no graph optimization, so a QDQ graph runs as written (QuantizeLinear, DequantizeLinear and float
    ops, no fusion into integer kernels): the same numbers on every CPU, whatever its int8 instructions.
    """
    import onnx
    import onnxruntime as ort

    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in output_names if name not in present)
    options = ort.SessionOptions()
    if literal:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _float_tensors(model):
    """Names of the float32 tensors a node of `model` produces (types from ONNX shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    produced = {name for node in model.graph.node for name in node.output}
    return {name for name in produced if types.get(name) == onnx.TensorProto.FLOAT}


class _Graph:
    """Producers, consumers and initializers of an ONNX graph."""

    def __init__(self, model):
        self.model = model
        self.nodes = list(model.graph.node)
        self.producer = {name: node for node in self.nodes for name in node.output}
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def is_activation(self, name):
        return name not in self.initializers and name in self.producer

    def constant(self, name):
        from onnx import numpy_helper

        return numpy_helper.to_array(self.initializers[name]) if name in self.initializers else None

    def unit(self, name, stop):
        """The nodes that compute tensor `name`, outputs first, back to tensors in `stop`, constants and
        Quantize/DequantizeLinear nodes (the borders of a QDQ group)."""
        found, frontier = [], [name]
        while frontier:
            node = self.producer.get(frontier.pop(0))
            if node is None or node in found or node.op_type in QDQ_OPS:
                continue
            found.append(node)
            frontier += [i for i in node.input if i and i not in stop and self.is_activation(i)]
        return found

    def weight_names(self, node):
        """Initializers a node reads, directly or through a DequantizeLinear of an initializer."""
        names = []
        for name in node.input:
            source = self.producer.get(name)
            if name in self.initializers:
                names.append(name)
            elif source is not None and source.op_type == "DequantizeLinear" and source.input[0] in self.initializers:
                names.append(source.input[0])
        return names


def _layers(graph, unit, known):
    """Keras layers of a node group: its nodes' and weights' names (not those of an input quantizer, which is
    named after the tensor it reads), else its inputs' names."""
    own = [n for node in unit if node.op_type not in INPUT_QUANTIZERS for n in (node.name, *node.output)]
    weights = [n for node in unit for n in graph.weight_names(node)]
    inputs = [i for node in unit for i in node.input if graph.is_activation(i)]
    return layers_named(own + weights, inputs, known)


def _qdq_rows(graph, float_names, known):
    """[(X, compared tensor, [Q/DQ to copy for the cut], Probe)] of a static QDQ graph."""
    rows = []
    for node in graph.nodes:
        source = node.input[0]
        if node.op_type != "QuantizeLinear" or source not in float_names or not graph.is_activation(source):
            continue
        dequantizers = [c for c in graph.consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
        if not dequantizers:
            continue
        zero_point = graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        scale = graph.constant(node.input[1])
        unit = graph.unit(source, set())
        probe = Probe(tensor=source, op=graph.producer[source].op_type, layers=_layers(graph, unit, known),
                      dtype=zero_point.dtype.name if zero_point is not None else "uint8",
                      scale=None if scale is None else scale.tolist(),
                      zero_point=None if zero_point is None else zero_point.tolist())
        rows.append((source, dequantizers[0].output[0], [node, *dequantizers], probe))
    return rows


def _dynamic_rows(graph, float_names, known):
    """[(X, X, [], Probe)] for each float tensor X computed by a node group holding an integer op."""
    rows = []
    for name in float_names:
        if name not in graph.producer:
            continue
        unit = graph.unit(name, float_names - {name})
        if any(node.op_type in INTEGER_OPS for node in unit):
            operations = [node.op_type for node in unit if node.op_type in INTEGER_OPS]
            rows.append((name, name, [], Probe(tensor=name, op=operations[0], layers=_layers(graph, unit, known),
                                               dtype="float32")))
    order = {node.output[0]: i for i, node in enumerate(graph.nodes)}
    return sorted(rows, key=lambda row: order.get(row[0], 0))


def _cut_qdq(model, rows):
    """The QDQ graph whose DequantizeLinear consumers read copies of Q/DQ fed with the float X."""
    import onnx

    graph = model.graph
    fed = []
    for source, compared, pair, _ in rows:
        quantizer, *dequantizers = pair
        copied_q = onnx.helper.make_node("QuantizeLinear", [source + CUT, *quantizer.input[1:]],
                                         [source + CUT + "_q"], name=quantizer.name + CUT)
        for k, dequantizer in enumerate(dequantizers):
            cut_name = f"{source}{CUT}_dq{k}"
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in dequantizer.attribute}
            graph.node.append(onnx.helper.make_node("DequantizeLinear", [copied_q.output[0], *dequantizer.input[1:]],
                                                    [cut_name], name=dequantizer.name + CUT, **attributes))
            _rewire(graph, dequantizer.output[0], cut_name, skip=(dequantizer.name + CUT,))
        graph.node.append(copied_q)
        fed.append(source)
    return fed


def _cut_float_edges(model, float_names):
    """The dynamic graph whose ops read the float model's value of every input the float graph has."""
    fed = []
    for name in sorted(float_names):
        if _rewire(model.graph, name, name + CUT):
            fed.append(name)
    return fed


def _rewire(graph, old, new, skip=()):
    """Let every node but those named in `skip` read `new` instead of `old`; True when any did."""
    changed = False
    for node in graph.node:
        if node.name in skip:
            continue
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new
                changed = True
    return changed


def _add_inputs(model, names):
    import onnx

    model.graph.input.extend(onnx.helper.make_tensor_value_info(name + CUT, onnx.TensorProto.FLOAT, None)
                             for name in names)


def _topological(model):
    """Reorder nodes so each comes after the producers of its inputs (copies were appended at the end)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise ValueError("the cut ONNX graph has a cycle or a missing input")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [node for node in pending if node not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def measure(float_path, quantized_path, samples, layer_names=None):
    """A `Measurement` of every quantized tensor of `quantized_path` against `float_path` on `samples`
    (preprocessed float32 NHWC; each sample is run as a batch of one)."""
    float_model, quantized = _load(float_path), _load(quantized_path)
    float_names = _float_tensors(float_model)
    graph = _Graph(quantized)
    static = any(n.op_type == "QuantizeLinear" and graph.is_activation(n.input[0]) for n in graph.nodes)
    rows = (_qdq_rows if static else _dynamic_rows)(graph, float_names, layer_names)
    cut_model = _load(quantized_path)
    fed = _cut_qdq(cut_model, rows) if static else _cut_float_edges(cut_model, float_names & set(graph.producer))
    _add_inputs(cut_model, fed)
    _topological(cut_model)
    float_output, output = float_model.graph.output[0].name, quantized.graph.output[0].name
    needed = sorted({source for source, *_ in rows} | set(fed))
    floats = _session(float_model, needed)
    accumulated = _session(quantized, [compared for _, compared, *_ in rows], literal=True)
    cut = _session(cut_model, [compared for _, compared, *_ in rows], literal=True)
    input_name = floats.get_inputs()[0].name
    output_stats = ErrorStats()
    for sample in np.asarray(samples, dtype="float32"):
        batch = {input_name: sample[None]}
        reference = dict(zip([o.name for o in floats.get_outputs()], floats.run(None, batch)))
        run = dict(zip([o.name for o in accumulated.get_outputs()], accumulated.run(None, batch)))
        feed = {name + CUT: reference[name] for name in fed}
        feed.update({i.name: sample[None] for i in cut.get_inputs() if i.name == input_name})
        alone = dict(zip([o.name for o in cut.get_outputs()], cut.run(None, feed)))
        for source, compared, _, probe in rows:
            probe.accumulated.add(reference[source], run[compared])
            probe.own.add(reference[source], alone[compared])
        output_stats.add(reference[float_output], run[output])
    return Measurement(probes=[probe for *_, probe in rows], output=output_stats, samples=len(samples))
