"""What a format module measures for the report: one `Probe` per quantized op output, and the model output.

`accumulated`: the quantized artifact run end to end against the float one (errors of every earlier layer
included). `own`: the same op run on the float model's own inputs (quantized by the artifact's input
quantization, as the quantized kernel sees them) against the float model's output of that op: the error this
layer adds by itself, which ranks the report.
"""
import dataclasses

from export.quantreport.names import keras_layers
from export.quantreport.stats import ErrorStats


@dataclasses.dataclass
class Probe:
    """One quantized op output: where it is, how it is stored, and its two error accumulators."""

    tensor: str  # the tensor's name in the quantized file
    op: str  # the op type in the file (CONV_2D, Conv, ...)
    layers: list  # Keras layers the op computes (fused ops name several)
    dtype: str  # storage type of the output: int8, int16, uint8, or float32 (dynamic range)
    scale: object = None  # float, or a list for per-channel; None for float outputs
    zero_point: object = None
    accumulated: ErrorStats = dataclasses.field(default_factory=ErrorStats)
    own: ErrorStats = dataclasses.field(default_factory=ErrorStats)


@dataclasses.dataclass
class Measurement:
    """Every probe of one artifact in graph order, the model output, and how many samples were run."""

    probes: list
    output: ErrorStats
    samples: int


def layers_named(names, fallback=(), known=None):
    """The Keras layers `names` mention (an op's output and weight names), else those `fallback` mentions
    (its input names: a softmax fused into a Dense layer is named after that layer)."""
    return keras_layers(names, known) or keras_layers(fallback, known)
