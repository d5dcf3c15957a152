"""Per-op errors of a quantized .tflite against the float .tflite of the same SavedModel.

Both files come from one converter run on one SavedModel, so an op output keeps its tensor name across
precisions; QUANTIZE/DEQUANTIZE outputs stand for the tensor they convert. Three interpreters run each sample,
all with the builtin kernels (no XNNPACK delegate: a delegated graph keeps no intermediate tensors):

- the float file and the quantized file with every tensor preserved: the accumulated error of each op output;
- a "cut" copy of the quantized file in which every activation input of every op is a graph input of its own,
  fed with the float model's value of that tensor quantized by the tensor's scale and zero point: each op
  runs once per sample on the float model's inputs, which gives the error of that layer alone.

Example:
    >>> measurement = measure("m_fp32.tflite", "m_int8.tflite", x[:64])  # doctest: +SKIP
    >>> [(p.layers[0], round(p.own.sqnr_db(), 1)) for p in measurement.probes][:2]  # doctest: +SKIP
    [('conv1_relu', 41.3), ('conv2_block1_1_relu', 36.0)]
"""
import copy

import numpy as np

from export.quantreport.probes import Measurement, Probe, layers_named
from export.quantreport.stats import ErrorStats
from export.runtimes import dequantize, quantize

CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")  # their output stands for the same float tensor as their input
WEIGHT_TYPES = ("INT8", "INT16", "INT4")  # a float op with such a constant input is a dynamic-range (hybrid) op


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _read(path):
    """The file's bytes and its flatbuffer object tree (ModelT)."""
    schema = _schema()
    with open(path, "rb") as handle:
        content = handle.read()
    return content, schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))


def _interpreter(content, keep_all=False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from export.core.quiet import native_noise_filtered

    with native_noise_filtered():
        interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=keep_all,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        for detail in interpreter.get_input_details():  # a dynamic batch runs at 1
            if -1 in detail["shape_signature"]:
                interpreter.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]])
        interpreter.allocate_tensors()
    return interpreter


def _names_of_enum(enum_class):
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


class _Graph:
    """Subgraph 0 of a ModelT with names: op types, tensor names and types, which tensors are constants."""

    def __init__(self, model):
        schema = _schema()
        self.model = model
        self.graph = model.subgraphs[0]
        builtin = _names_of_enum(schema.BuiltinOperator)
        self.types = _names_of_enum(schema.TensorType)
        codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
        self.op_types = [builtin.get(codes[op.opcodeIndex], "CUSTOM") for op in self.graph.operators]

    def name(self, index):
        return self.graph.tensors[index].name.decode()

    def type_name(self, index):
        return self.types[self.graph.tensors[index].type]

    def is_constant(self, index):
        data = self.model.buffers[self.graph.tensors[index].buffer].data
        return data is not None and len(data) > 0

    def activation_inputs(self, op):
        return [i for i in op.inputs if i >= 0 and not self.is_constant(i)]

    def constant_inputs(self, op):
        return [i for i in op.inputs if i >= 0 and self.is_constant(i)]


def _float_equivalents(graph, float_names):
    """{quantized tensor index: float tensor name}: same name, or across QUANTIZE/DEQUANTIZE."""
    equivalent = {i: graph.name(i) for i in range(len(graph.graph.tensors)) if graph.name(i) in float_names}
    conversions = [op for op, kind in zip(graph.graph.operators, graph.op_types) if kind in CONVERSION_OPS]
    changed = True
    while changed:
        changed = False
        for op in conversions:
            source, target = op.inputs[0], op.outputs[0]
            for a, b in ((source, target), (target, source)):
                if a in equivalent and b not in equivalent:
                    equivalent[b] = equivalent[a]
                    changed = True
    return equivalent


def _is_quantized_op(graph, op, kind):
    """An op whose output is stored as integers (full-integer models), or a float op with integer weights
    (dynamic range); a DEQUANTIZE only converts and adds no error of its own."""
    if kind == "DEQUANTIZE":
        return False
    if graph.type_name(op.outputs[0]).startswith("INT"):
        return True
    return any(graph.type_name(i) in WEIGHT_TYPES for i in graph.constant_inputs(op))


def _quantization(tensor):
    """(scale, zero point) of a tensor: scalars when per-tensor, lists when per-channel, None when float."""
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None, None
    scale, zero_point = [float(s) for s in q.scale], [int(z) for z in q.zeroPoint]
    return (scale[0], zero_point[0]) if len(scale) == 1 else (scale, zero_point)


def _probes(graph, equivalent, known):
    """[(op, Probe)] for every quantized op whose output has a float counterpart, in graph order."""
    found = []
    for op, kind in zip(graph.graph.operators, graph.op_types):
        output = op.outputs[0]
        if output not in equivalent or not _is_quantized_op(graph, op, kind):
            continue
        names = [graph.name(output), equivalent[output], *(graph.name(i) for i in graph.constant_inputs(op))]
        layers = layers_named(names, [graph.name(i) for i in graph.activation_inputs(op)], known)
        scale, zero_point = _quantization(graph.graph.tensors[output])
        found.append((op, Probe(tensor=graph.name(output), op=kind, layers=layers,
                                dtype=graph.type_name(output).lower(), scale=scale, zero_point=zero_point)))
    return found


def _cut_model(model, graph):
    """Bytes of a copy of the quantized model in which every activation input of every op is a new graph
    input (same type, shape and quantization), and every op output a graph output; [(new input, original)]."""
    schema = _schema()
    model = copy.deepcopy(model)
    sub = model.subgraphs[0]
    model.buffers.append(schema.BufferT())
    empty = len(model.buffers) - 1
    fed = []
    for op in sub.operators:
        for k, index in enumerate(op.inputs):
            if index < 0 or graph.is_constant(index):
                continue
            tensor = copy.copy(sub.tensors[index])
            tensor.name = tensor.name + f"#cut{len(fed)}".encode()
            tensor.buffer = empty
            sub.tensors.append(tensor)
            op.inputs[k] = len(sub.tensors) - 1
            fed.append((len(sub.tensors) - 1, index))
    sub.inputs = [new for new, _ in fed]
    sub.outputs = [op.outputs[0] for op in sub.operators]
    model.signatureDefs = []
    return _packed(model), fed


def _packed(model):
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _details(interpreter):
    return {d["index"]: d for d in interpreter.get_tensor_details()}


def _as_float(value, detail):
    """A tensor read from an interpreter as float64 (integers dequantized with the tensor's scale)."""
    if np.issubdtype(value.dtype, np.integer):
        scale, zero_point = detail["quantization"]
        return dequantize(value, {"scale": scale, "zero_point": zero_point}).astype("float64")
    return value.astype("float64")


def _as_stored(value, detail):
    """A float value as the tensor stores it (quantized with its scale when integer)."""
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero_point = detail["quantization"]
        return quantize(value, {"scale": scale, "zero_point": zero_point}, detail["dtype"])
    return value.astype(detail["dtype"])


def _run(interpreter, sample):
    detail, = interpreter.get_input_details()
    interpreter.set_tensor(detail["index"], _as_stored(sample[None], detail))
    interpreter.invoke()


def measure(float_path, quantized_path, samples, layer_names=None):
    """A `Measurement` of every quantized op of `quantized_path` against `float_path` on `samples`
    (preprocessed float32, NHWC); `layer_names`: the Keras model's layer names in order, when known."""
    float_content, _ = _read(float_path)
    content, model = _read(quantized_path)
    graph = _Graph(model)
    floats = _interpreter(float_content, keep_all=True)
    float_index = {d["name"]: d["index"] for d in floats.get_tensor_details()}
    equivalent = _float_equivalents(graph, float_index)
    probes = _probes(graph, equivalent, layer_names)
    quantized = _interpreter(content, keep_all=True)
    cut_content, fed = _cut_model(model, graph)
    cut = _interpreter(cut_content)
    q_details, cut_details = _details(quantized), _details(cut)
    float_output = floats.get_output_details()[0]["index"]
    output_detail = quantized.get_output_details()[0]
    output_stats = ErrorStats()
    # an op reading a tensor the float model lacks cannot run on float inputs: no own error for it
    own_measurable = [all(i in equivalent for i in graph.activation_inputs(op)) for op, _ in probes]
    for sample in np.asarray(samples, dtype="float32"):
        _run(floats, sample)
        _run(quantized, sample)
        for new, original in fed:
            reference = floats.get_tensor(float_index[equivalent[original]]) if original in equivalent else None
            value = np.zeros(cut_details[new]["shape"], "float32") if reference is None else reference
            cut.set_tensor(new, _as_stored(value, cut_details[new]))
        cut.invoke()
        for (op, probe), measurable in zip(probes, own_measurable):
            index = op.outputs[0]
            reference = floats.get_tensor(float_index[equivalent[index]])
            probe.accumulated.add(reference, _as_float(quantized.get_tensor(index), q_details[index]))
            if measurable:
                probe.own.add(reference, _as_float(cut.get_tensor(index), cut_details[index]))
        output_stats.add(floats.get_tensor(float_output),
                         _as_float(quantized.get_tensor(output_detail["index"]), output_detail))
    return Measurement(probes=[p for _, p in probes], output=output_stats, samples=len(samples))
