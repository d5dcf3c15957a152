"""The one table of what can be exported: per (format, precision) its converter, calibration need and gate.

`VARIANTS` holds one row per (format, precision); `FORMATS` holds the per-format facts (file suffix, runtime)
and the precisions its rows offer. Everything else reads these: `plan` (what a --format/--precision/--all
choice builds), `convert` (calls the row's converter), `export.gates.DEFAULT_GATES` (a view of the gates).

Every converter module exposes one contract, `write(context, precision, path)`, with `context` an
`export.converters.ConvertContext`.

`slow_kernels` marks a row whose runtime runs it with slow CPU kernels (why, in words);
`export.slow_kernels` carries it into the manifest entry with the latency ratio to the fp32 file of the format.

Gates (keys are checked by `export.verify`): `min_agreement` (top-1 agreement with the reference),
`max_accuracy_drop` (points), `noise_multiple` + `noise_floor` (fp32: max logit error <= max(multiple x the
reference's own float noise, floor), both relative to the reference's output range), `max_rel_err` (an explicit
error limit; replaces the noise rule when given, e.g. by `--gate fp32.max_rel_err=1e-5`), `max_samples` (the
first held-out samples the row is checked on; fp32: 64, `--gate fp32.max_samples=1000` checks more).

Example:
    >>> [(f.name, p) for f, p in plan(["tflite", "onnx"], ["int8"])]
    [('tflite', 'int8'), ('onnx', 'int8')]
    >>> variant("tflite", "int8").calibrated, variant("onnx", "fp32").converter
    (True, 'export.converters.onnx')
"""
import dataclasses
import importlib

from export.core.errors import UserError

# fp32: a correct conversion differs from the reference only by float rounding, so its limit is derived
# from the reference's own rounding noise (see export.gates.error_limit for the rule and its reasons).
# It is checked on the FP32_SAMPLES held-out samples the noise is measured on: a wrong float conversion
# (a swapped channel, a changed weight, a wrong op) is wrong on every input, while agreement rates (fp16,
# quantized rows) are statistics and take every held-out sample (`max_samples`, export.gates.checked_samples).
FP32_SAMPLES = 64
FP32_GATE = {"min_agreement": 1.0, "noise_multiple": 20.0, "noise_floor": 1e-4, "max_samples": FP32_SAMPLES}
FP16_GATE = {"min_agreement": 0.995}
INTEGER_GATE = {"min_agreement": 0.98, "max_accuracy_drop": 1.0}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the table: a format at one precision, the converter module that writes it, its gate."""

    format: str
    precision: str
    converter: str  # module exposing write(context, precision, path)
    calibrated: bool = False  # needs representative (calibration) samples
    gate: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)
    slow_kernels: str = ""  # why this row runs slower than its fp32 sibling on CPU ("" = it does not)

    @property
    def fmt(self):
        """The row's `Format`."""
        return FORMATS[self.format]

    def file_name(self, model_name):
        """Artifact file (or directory) name, e.g. ``resnet20_int8.tflite``."""
        return self.fmt.file_name(model_name, self.precision)


VARIANTS = (
    #       format         precision  converter module                    calibrated  gate
    Variant("keras",       "fp32",    "export.converters.keras_file",      False,      FP32_GATE),
    Variant("saved_model", "fp32",    "export.converters.saved_model",     False,      FP32_GATE),
    Variant("tflite",      "fp32",    "export.converters.tflite",          False,      FP32_GATE),
    Variant("tflite",      "fp16",    "export.converters.tflite",          False,      FP16_GATE),
    Variant("tflite",      "dynamic", "export.converters.tflite",          False,      INTEGER_GATE),
    Variant("tflite",      "int8",    "export.converters.tflite",          True,       INTEGER_GATE),
    Variant("tflite",      "int16x8", "export.converters.tflite",          True,       INTEGER_GATE,
            slow_kernels="int16x8 runs TFLite's reference kernels on CPU (resnet20: 23 ms vs int8 0.27 ms)"),
    Variant("micro",       "int8",    "export.converters.micro",           True,       INTEGER_GATE),
    Variant("onnx",        "fp32",    "export.converters.onnx",            False,      FP32_GATE),
    Variant("onnx",        "int8",    "export.converters.onnx",            True,       INTEGER_GATE),
    Variant("onnx",        "dynamic", "export.converters.onnx",            False,      INTEGER_GATE,
            slow_kernels="onnxruntime's dynamic ConvInteger quantizes every activation per call and runs "
                         "im2col + MatMulInteger (shipped default: 2x fp32 latency)"),
)


@dataclasses.dataclass(frozen=True)
class Format:
    """One export format: name, file suffix ("" = directory), runtime that runs it; precisions from its rows."""

    name: str
    suffix: str
    runtime: str
    default_precision: str = "fp32"

    @property
    def precisions(self):
        """The precisions this format's rows offer, in table order."""
        return tuple(v.precision for v in VARIANTS if v.format == self.name)

    @property
    def calibrated(self):
        """The precisions that need calibration data."""
        return tuple(v.precision for v in VARIANTS if v.format == self.name and v.calibrated)

    def needs_calibration(self, precision):
        """True when `precision` needs calibration data (full-integer quantization)."""
        return precision in self.calibrated

    def check_precision(self, precision):
        """Raise UserError unless this format offers `precision`."""
        if precision not in self.precisions:
            raise UserError(f"format {self.name!r} does not offer precision {precision!r}; "
                            f"allowed: {', '.join(self.precisions)}")
        return precision

    def variant(self, precision):
        """The table row of this format at `precision` (UserError when not offered)."""
        return variant(self.name, precision)

    def file_name(self, model_name, precision):
        """Artifact file (or directory) name, e.g. ``resnet20_int8.tflite``."""
        return FILE_NAMES[self.name].format(model=model_name, precision=precision, suffix=self.suffix)


FILE_NAMES = {"keras": "{model}{suffix}", "saved_model": "saved_model", "tflite": "{model}_{precision}{suffix}",
              "onnx": "{model}_{precision}{suffix}", "micro": "{model}_model_data{suffix}"}
FORMATS = {
    "keras": Format("keras", ".keras", "keras"),
    "saved_model": Format("saved_model", "", "tensorflow"),
    "tflite": Format("tflite", ".tflite", "ai_edge_litert"),
    "onnx": Format("onnx", ".onnx", "onnxruntime"),
    # TFLM C++ source (.cc + .h beside it) of the int8 flatbuffer with int8 I/O; verified by running the array
    # it holds in ai_edge_litert, and always checked against the micro target (export.pipeline)
    "micro": Format("micro", ".cc", "tflite-micro", default_precision="int8"),
}
DEFAULT_FORMATS = ("tflite", "onnx")
ALL_PRECISIONS = tuple(dict.fromkeys(v.precision for v in VARIANTS))


def get_format(name):
    """The Format called `name`; UserError listing the allowed names otherwise."""
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; allowed: {', '.join(FORMATS)}")
    return FORMATS[name]


def variant(format_name, precision):
    """The row for (format, precision); UserError naming the allowed values otherwise.

    Example:
        >>> variant("onnx", "dynamic").gate["min_agreement"]
        0.98
    """
    get_format(format_name).check_precision(precision)
    return next(v for v in VARIANTS if (v.format, v.precision) == (format_name, precision))


def default_gates():
    """{precision: gate} from the table (a fresh copy; every format has the same gate for a precision)."""
    return {v.precision: dict(v.gate) for v in VARIANTS}


def convert(row, context, path):
    """Write the artifact of `row` (a Variant) to `path` with the row's converter; returns `path`.

    A calibrated row without calibration samples is a UserError (nothing is written).
    """
    calibration = context.calibration
    if row.calibrated and (calibration is None or len(calibration) == 0):
        raise UserError(f"{row.format} {row.precision} needs calibration data (--data)")
    importlib.import_module(row.converter).write(context, row.precision, path)
    return path


def _check_known_precisions(precisions):
    for precision in precisions:
        if precision not in ALL_PRECISIONS:
            raise UserError(f"unknown precision {precision!r}; allowed: {', '.join(ALL_PRECISIONS)}")


def _parse_precisions(tokens):
    """Split precision tokens into plain ones ("int8": every chosen format) and scoped pairs ("tflite:fp16")."""
    plain, scoped = [], []
    for token in tokens:
        if ":" in token:
            format_name, precision = token.split(":", 1)
            get_format(format_name).check_precision(precision)
            scoped.append((format_name, precision))
        else:
            plain.append(token)
    _check_known_precisions(plain)
    return plain, scoped


def _default_formats(plain, scoped):
    """Formats used when none is given: the defaults offering a plain precision, plus formats named in scoped ones."""
    defaults = [FORMATS[name] for name in DEFAULT_FORMATS]
    if plain:
        base = [f for f in defaults if set(plain) & set(f.precisions)]
    else:
        base = [] if scoped else defaults
    named = {name for name, _ in scoped}
    return [f for f in FORMATS.values() if f in base or f.name in named] or defaults


def plan_variants(formats=None, precisions=None, all_formats=False):
    """The table rows to export, in table order (see `plan`).

    Example:
        >>> [(v.format, v.precision) for v in plan_variants(["onnx"], ["int8"])]
        [('onnx', 'int8')]
    """
    return [variant(fmt.name, precision) for fmt, precision in plan(formats, precisions, all_formats)]


def plan(formats=None, precisions=None, all_formats=False):
    """List of (Format, precision) pairs to export, in table order.

    - `all_formats`: every format with every precision it offers (formats/precisions then must be empty).
    - a precision "FORMAT:PRECISION" (e.g. "tflite:fp16") applies to that format only; a plain precision
      applies to every chosen format that offers it.
    - no formats: tflite and onnx (those of them offering a given precision) plus formats named in scoped ones.
    - no precisions: each chosen format's default precision.
    - every given format must offer at least one requested precision, and every plain precision must be
      offered by some chosen format; otherwise UserError naming the allowed values.

    Example:
        >>> [(f.name, p) for f, p in plan(precisions=["int8", "tflite:fp16"])]
        [('tflite', 'fp16'), ('tflite', 'int8'), ('onnx', 'int8')]
    """
    formats, precisions = list(dict.fromkeys(formats or [])), list(dict.fromkeys(precisions or []))
    plain, scoped = _parse_precisions(precisions)
    chosen = [get_format(name) for name in formats]
    if all_formats:
        if formats or precisions:
            raise UserError("--all selects every format and precision; do not combine it with --format/--precision")
        return [(FORMATS[v.format], v.precision) for v in VARIANTS]
    if not chosen:
        chosen = _default_formats(plain, scoped)
    for precision in plain:
        if not any(precision in f.precisions for f in chosen):
            chosen[0].check_precision(precision)
    pairs = []
    for fmt in chosen:
        requested = set(plain) | {p for name, p in scoped if name == fmt.name}
        wanted = [p for p in fmt.precisions if p in requested] if precisions else [fmt.default_precision]
        if not wanted:
            raise UserError(f"format {fmt.name!r} offers none of the requested precisions "
                            f"({', '.join(precisions)}); allowed: {', '.join(fmt.precisions)}")
        pairs.extend((fmt, p) for p in wanted)
    return pairs
