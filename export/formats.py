"""The declarative table of export formats: file suffix, runtime, allowed precisions, calibration needs.

`plan` turns a user's `--format`/`--precision`/`--all` choice into the list of (format, precision) pairs to
build, raising `UserError` (with the allowed values) for unknown names or a precision no chosen format has.

Example:
    >>> [(f.name, p) for f, p in plan(["tflite", "onnx"], ["int8"])]
    [('tflite', 'int8'), ('onnx', 'int8')]
    >>> FORMATS["tflite"].needs_calibration("int8")
    True
"""
import dataclasses

from export.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Format:
    """One export format: name, file suffix ("" = directory), runtime that runs it, precisions it offers."""

    name: str
    suffix: str
    runtime: str
    precisions: tuple
    calibrated: tuple = ()  # precisions that need representative (calibration) data
    default_precision: str = "fp32"

    def needs_calibration(self, precision):
        """True when `precision` needs calibration data (full-integer quantization)."""
        return precision in self.calibrated

    def check_precision(self, precision):
        """Raise UserError unless this format offers `precision`."""
        if precision not in self.precisions:
            raise UserError(f"format {self.name!r} does not offer precision {precision!r}; "
                            f"allowed: {', '.join(self.precisions)}")
        return precision

    def file_name(self, model_name, precision):
        """Artifact file (or directory) name, e.g. ``resnet20_int8.tflite``."""
        if self.name == "saved_model":
            return "saved_model"
        return f"{model_name}_{precision}{self.suffix}" if self.name != "keras" else f"{model_name}{self.suffix}"


FORMATS = {
    "keras": Format("keras", ".keras", "keras", ("fp32",)),
    "saved_model": Format("saved_model", "", "tensorflow", ("fp32",)),
    "tflite": Format("tflite", ".tflite", "ai_edge_litert", ("fp32", "fp16", "dynamic", "int8", "int16x8"),
                     calibrated=("int8", "int16x8")),
    "onnx": Format("onnx", ".onnx", "onnxruntime", ("fp32", "int8", "dynamic"), calibrated=("int8",)),
}
DEFAULT_FORMATS = ("tflite", "onnx")
ALL_PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")


def get_format(name):
    """The Format called `name`; UserError listing the allowed names otherwise."""
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; allowed: {', '.join(FORMATS)}")
    return FORMATS[name]


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
        return [(fmt, p) for fmt in FORMATS.values() for p in fmt.precisions]
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
