"""Converters from the model (or its one traced SavedModel) to deployable files, one module per format.

Each module (`keras_file`, `saved_model`, `tflite`, `onnx`) exposes the same contract,
`write(context, precision, path)`; `export.formats.VARIANTS` names the module of every (format, precision)
and `export.formats.convert(row, context, path)` calls it.

Example:
    >>> context = ConvertContext(saved_model_dir="work/saved_model", work_dir="work")
    >>> context.int8_io, context.calibration is None
    (False, True)
"""
import dataclasses

from export.calibration import DEFAULT_METHOD


@dataclasses.dataclass
class ConvertContext:
    """What converters read: the model and its SavedModel, calibration samples and conversion options."""

    saved_model_dir: str
    work_dir: str  # scratch space (removed after the run); the ONNX fp32 graph is kept here for int8/dynamic
    model: object = None  # the Keras (or tf_keras) model; None for a SavedModel source
    calibration: object = None  # preprocessed float32 samples (N, H, W, C) for calibrated precisions
    int8_io: bool = False  # TFLite int8: int8 input/output tensors
    qat: bool = False  # the model carries fake-quant ops (QAT): its float graph already is the int8 graph
    keras_metadata: dict = dataclasses.field(default_factory=dict)  # embedded in a .keras artifact
    raw_input: object = None  # export.raw_input.Baked in a --raw-input run (saved_model_dir is then its uint8 graph)
    float_nodes: tuple = ()  # int8 rows: op output (TFLite) / node (ONNX) names kept in float (export.fallback)
    small_convs_float: bool = False  # TFLite int8: ops before the first conv with >= 16 outputs stay float (tflite)
    calibration_method: str = DEFAULT_METHOD  # how int8/int16x8 activation ranges are chosen (export.calibration)
    onnx_target: str | None = None  # ONNX int8 scheme (export.onnx_targets; None: this host's)
    cache: dict = dataclasses.field(default_factory=dict)  # intermediate files shared between precisions
