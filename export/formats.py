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

from export.errors import UserError


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


def plan(formats=None, precisions=None, all_formats=False):
    """List of (Format, precision) pairs to export, in table order.

    - `all_formats`: every format with every precision it offers (formats/precisions then must be empty).
    - no formats: tflite and onnx (those of them offering a given precision).
    - no precisions: each chosen format's default precision.
    - every given format must offer at least one given precision, and every given precision must be offered
      by some given format; otherwise UserError naming the allowed values.
    """
    formats, precisions = list(dict.fromkeys(formats or [])), list(dict.fromkeys(precisions or []))
    _check_known_precisions(precisions)
    chosen = [get_format(name) for name in formats]
    if all_formats:
        if formats or precisions:
            raise UserError("--all selects every format and precision; do not combine it with --format/--precision")
        return [(fmt, p) for fmt in FORMATS.values() for p in fmt.precisions]
    if not chosen:
        defaults = [FORMATS[name] for name in DEFAULT_FORMATS]
        chosen = [f for f in defaults if not precisions or set(precisions) & set(f.precisions)] or defaults
    for precision in precisions:
        if not any(precision in f.precisions for f in chosen):
            chosen[0].check_precision(precision)
    pairs = []
    for fmt in chosen:
        wanted = [p for p in fmt.precisions if p in precisions] if precisions else [fmt.default_precision]
        if not wanted:
            raise UserError(f"format {fmt.name!r} offers none of the requested precisions "
                            f"({', '.join(precisions)}); allowed: {', '.join(fmt.precisions)}")
        pairs.extend((fmt, p) for p in wanted)
    return pairs
