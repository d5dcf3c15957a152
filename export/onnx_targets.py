"""ONNX int8 per target CPU: which 8-bit types onnxruntime's fast kernels want, one table row per target.

`--onnx-target` (`ExportRequest.onnx_target`) picks a row of `TARGETS`; without it the host decides
(`default_target`: AVX-512 VNNI or AVX-VNNI -> x86-vnni, other x86 -> x86-avx2, ARM -> arm). The row drives
`export.converters.onnx.quantize_int8` (activation/weight types, 7-bit weights, QDQ extra options) and is
recorded in the manifest and in the ONNX file's metadata card (`facts`).

Why the types differ per CPU: on x86 onnxruntime runs uint8 activations x int8 weights (U8S8) with
VPMADDUBSW, which adds two u8*s8 products into a saturating int16 on CPUs without VNNI (AVX2, AVX-512F);
VNNI (VPDPBUSD) accumulates in int32 and never saturates. `saturation_problems` proves from a written file
that no pair of its weights can overflow int16 with uint8 activations.

Example:
    >>> default_target({"machine": "x86_64", "int8_flags": {"avx2": True, "avx512_vnni": False}})
    'x86-avx2'
    >>> TARGETS["x86-avx2"].reduce_range, TARGETS["x86-vnni"].activations
    (True, 'uint8')
"""
import dataclasses
import os

from export.core.errors import UserError

INT16_MAX = 32767
UINT8_MAX = 255


@dataclasses.dataclass(frozen=True)
class OnnxTarget:
    """One target CPU family: the int8 scheme its onnxruntime kernels run fast and exactly, and why."""

    name: str
    activations: str  # "uint8" | "int8": QuantizeLinear zero points of activations
    weights: str  # "int8" | "uint8": the quantized weight initializers
    reduce_range: bool  # 7-bit weights ([-64, 64]): no int16 overflow in VPMADDUBSW
    reason: str
    extra_options: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)
    float_below_channels: int = 0  # nodes before the first Conv with this many output channels stay float
    float_reason: str = ""
    qat_weights: str = "int8"  # type of a QAT file's 8-bit weights (trained at 8 bits: no 7-bit reduce_range)

    def facts(self):
        """The manifest / metadata record of this target (JSON-able)."""
        why_float = {"float_reason": self.float_reason} if self.float_below_channels else {}
        return {"name": self.name, "activations": self.activations, "weights": self.weights,
                "reduce_range": self.reduce_range, "float_below_channels": self.float_below_channels, **why_float}

    def qat_facts(self):
        """The record of a QAT file for this target: its trained 8-bit weights as `qat_weights`, no float convs
        (the fake-quant ops of the whole graph were trained)."""
        why = {"qat_weights_reason": QAT_UINT8_REASON} if self.qat_weights == "uint8" else {}
        return {"name": self.name, "activations": self.activations, "weights": self.qat_weights,
                "reduce_range": False, "float_below_channels": 0, "qat": True, **why}


SMALL_CONV_REASON = (
    "onnxruntime's x86 int8 convolution (MLAS ConvSym) needs >= 16 output channels; smaller ones take "
    "im2col + GEMM and lose to the fp32 NCHWc kernels: shipped ResNet-20 (8-channel first stage), Xeon AVX-512 "
    "VNNI, 1 thread, same run: fp32 0.377 ms, all int8 0.409 ms, first stage float 0.332 ms")

QAT_UINT8_REASON = (
    "QAT weights are trained at 8 bits (|w| <= 127), so 7-bit weights would lose what QAT learned, and int8 "
    "ones saturate VPMADDUBSW's int16 with uint8 activations on AVX2 (255*2*127 = 64770 > 32767): the tiny QAT "
    "ResNet agreed on 57 % of held-out digits on an AMD EPYC (AVX2). Stored as uint8 around zero point 128 the "
    "same values run U8U8, which onnxruntime widens to 16 bits and computes exactly on every x86 CPU")

TARGETS = {target.name: target for target in (
    OnnxTarget("x86-vnni", "uint8", "int8", False,
               "VNNI (VPDPBUSD) accumulates u8*s8 in int32: U8S8 is onnxruntime's fast path and never saturates; "
               "measured on Xeon AVX-512 VNNI, 1 thread, quiet box (reszoo bench): ResNet-50 224² int8 20.2 ms vs fp32 "
               "69.2 ms, 3.42x (S8S8: 1.1-1.5x; the issue measured U8S8 3.49x vs S8S8 1.52x on AMD EPYC)",
               float_below_channels=16, float_reason=SMALL_CONV_REASON),
    OnnxTarget("x86-avx2", "uint8", "int8", True,
               "AVX2 VPMADDUBSW adds two u8*s8 products into a saturating int16; 7-bit weights (|w| ≤ 64) keep "
               "255*(64+64) = 32640 ≤ 32767, so nothing saturates and results equal those of every other CPU; "
               "measured on AVX2 (no VNNI), ResNet-50 224², 2 threads: fp32 46.3 ms, S8S8 63.9, U8S8 45.1, "
               "U8S8+reduce_range 44.9 (U8U8, also exact, widens to 16 bits and is slower)",
               float_below_channels=16, float_reason=SMALL_CONV_REASON, qat_weights="uint8"),
    OnnxTarget("arm", "int8", "int8", False,
               "onnxruntime's docs: S8S8 with QDQ is the default and first choice, and ARM has no saturation "
               "issue (its dot-product kernels accumulate in int32); not measured here (no ARM host)"),
)}


def default_target(facts=None):
    """The target of this host (or of `export.core.cpu.cpu_facts`-like `facts`): x86-vnni, x86-avx2 or arm.

    An unknown architecture gets x86-avx2, the scheme that is exact on every CPU.

    Example:
        >>> default_target({"machine": "aarch64", "int8_flags": {"neon": True}})
        'arm'
    """
    from export.core.cpu import arch_family, cpu_facts

    facts = cpu_facts() if facts is None else facts
    family = arch_family(facts.get("machine"))
    if family == "arm":
        return "arm"
    flags = facts.get("int8_flags") or {}
    return "x86-vnni" if family == "x86" and (flags.get("avx512_vnni") or flags.get("avx_vnni")) else "x86-avx2"


def resolve_target(name=None, facts=None):
    """`name` when it is a known target, the host's default when None; UserError (one line) otherwise.

    Example:
        >>> resolve_target("arm")
        'arm'
    """
    if name is None:
        return default_target(facts)
    if name not in TARGETS:
        raise UserError(f"unknown --onnx-target {name!r}; allowed: {', '.join(TARGETS)}")
    return name


def host_note(name, facts=None):
    """A one-line note when this host cannot verify `name`'s file as its device will run it, else None.

    Example:
        >>> host_note("x86-vnni", {"machine": "x86_64", "int8_flags": {"avx2": True, "avx512_vnni": False}})[:40]
        'note: --onnx-target x86-vnni writes U8S8'
    """
    if name == "x86-vnni" and default_target(facts) != "x86-vnni":
        return ("note: --onnx-target x86-vnni writes U8S8 with 8-bit weights for a VNNI CPU; this host has no VNNI, "
                "so its verification may saturate (VPMADDUBSW int16) and understate the file's accuracy")
    return None


# --------------------------------------------------------------------------------------- saturation checker
WEIGHT_INPUTS = {"Conv": 1, "ConvInteger": 1, "Gemm": 1, "MatMul": 1, "MatMulInteger": 1, "QLinearConv": 3,
                 "QLinearMatMul": 3}  # op -> input index of its weight


def quantized_weights(path):
    """{initializer name: int8/uint8 array} of the weights that Conv/Gemm/MatMul nodes read through a
    DequantizeLinear (QDQ) or directly (integer ops)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(os.fspath(path)).graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    found = {}
    for node in graph.node:
        index = WEIGHT_INPUTS.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        name = node.input[index]
        source = producers.get(name)
        if source is not None and source.op_type == "DequantizeLinear":
            name = source.input[0]
        if name in initializers and initializers[name].data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            found[name] = numpy_helper.to_array(initializers[name])
    return found


def saturation_problems(path, activation_max=UINT8_MAX):
    """One line per int8 weight of the file that could overflow int16 in VPMADDUBSW with uint8 activations.

    VPMADDUBSW adds two adjacent products a*w (a ≤ 255) into an int16; which two weights are adjacent depends
    on the kernel's packing, so the bound is the conservative one: activation_max * 2 * max|w| ≤ 32767 for
    every weight tensor. Unsigned (U8U8) weights are computed by widening to 16 bits, never with VPMADDUBSW,
    so they pass. [] means no input can saturate on any x86 CPU.

    Example:
        >>> saturation_problems("model_int8.onnx")  # doctest: +SKIP
        ['conv1_w_quantized: 255*2*127 = 64770 > 32767']
    """
    import numpy as np

    problems = []
    for name, weights in quantized_weights(path).items():
        if weights.dtype != np.int8 or weights.size == 0:
            continue
        largest = int(np.abs(weights.astype(np.int32)).max())
        bound = activation_max * 2 * largest
        if bound > INT16_MAX:
            problems.append(f"{name}: {activation_max}*2*{largest} = {bound} > {INT16_MAX}")
    return problems


def quantized_types(path):
    """{"activations": zero-point dtypes of the activation QuantizeLinear nodes, "weights": dtypes of the
    quantized weights} of a QDQ file, each a sorted list of numpy dtype names.

    Example:
        >>> quantized_types("model_int8.onnx")  # doctest: +SKIP
        {'activations': ['uint8'], 'weights': ['int8']}
    """
    import onnx
    from onnx import helper

    graph = onnx.load(os.fspath(path)).graph
    initializers = {init.name: init for init in graph.initializer}
    activations = {helper.tensor_dtype_to_np_dtype(initializers[node.input[2]].data_type).name
                   for node in graph.node if node.op_type == "QuantizeLinear" and len(node.input) > 2
                   and node.input[0] not in initializers and node.input[2] in initializers}
    weights = {array.dtype.name for array in quantized_weights(path).values()}
    return {"activations": sorted(activations), "weights": sorted(weights)}


DYNAMIC_SCHEME = {"activations": "uint8", "weights": "uint8", "reduce_range": False}  # quantize_dynamic: U8U8


def artifact_facts(name, precision, qat=False):
    """What an ONNX artifact of `precision` records about target `name`: the scheme it was written with
    (int8: the target's row, or its QAT record for a QAT model; dynamic: U8U8, exact on every CPU); None for
    float precisions.

    Example:
        >>> artifact_facts("x86-avx2", "dynamic")["weights"], artifact_facts("arm", "fp32")
        ('uint8', None)
        >>> artifact_facts("x86-avx2", "int8", qat=True)["weights"]
        'uint8'
    """
    if precision == "int8" and qat:
        return TARGETS[name].qat_facts()
    if precision == "int8":
        return TARGETS[name].facts()
    if precision == "dynamic":
        return {"name": name, **DYNAMIC_SCHEME}
    return None
