"""`ExportRequest`: everything an export run is asked to do, planned and validated once, before any heavy work.

`ExportRequest.build(**options)` takes the same keyword arguments as `export.export_model` (and the CLI's
options); it plans the (format, precision) rows (`export.formats.plan_variants`), merges the gates, and
refuses impossible combinations with a one-line `UserError`. Checks that need the loaded model (a SavedModel
source cannot give a .keras artifact) are `check_source`.

Example:
    >>> request = ExportRequest.build(formats=["tflite"], precisions=["int8"], int8_io=True, data="digits")
    >>> [(v.format, v.precision) for v in request.variants], request.gates["int8"]["min_agreement"]
    ([('tflite', 'int8')], 0.98)
"""
import dataclasses
import os

from export.calibration import DEFAULT_METHOD, check_method
from export.core.errors import UserError
from export.formats import plan_variants
from export.raw_input import check_request as _check_raw_input

TARGET_PRECISIONS = {"edgetpu": ("int8",)}  # integer-only accelerators: check only full-int8 artifacts


@dataclasses.dataclass(frozen=True)
class ExportRequest:
    """A validated export request (build it with `ExportRequest.build`)."""

    variants: tuple  # export.formats.Variant rows to build, in table order
    gates: dict  # {precision: gate}, DEFAULT_GATES with the overrides merged in
    data: str | None = None  # "digits" | class-folder dir | .npz | None (the model's recorded source)
    output_dir: str | None = None  # None: exports/<model name>
    force: bool = False
    optimizations: dict = dataclasses.field(default_factory=dict)  # prune, prune_structure, qat, cluster, ...
    target: str | None = None  # TFLite edge check (generic when only max_size is given)
    max_size: int | None = None  # bytes
    int8_io: bool = False
    dynamic_batch: bool = False
    calibration_samples: int = 300
    verify_samples: int | None = None  # cap on held-out samples; None: all
    threads: int | None = None
    latency_runs: int = 30
    model_name: str | None = None
    raw_input: bool = False  # preprocessing baked into the graph: uint8 pixel inputs (export.raw_input)
    calibration: str = DEFAULT_METHOD  # how int8/int16x8 activation ranges are calibrated (export.calibration)
    equalize: bool = True  # cross-layer equalization before quantization (export.optimize.equalize)
    fallback: bool = True  # failing int8 rows keep their worst layers in float (export.fallback)
    onnx_target: str | None = None  # ONNX int8 scheme's CPU (export.onnx_targets); build() resolves the host's
    max_optimization_drop: float | None = None  # points an optimization may cost vs the original (None: 1.0)
    check_cpus: tuple = ()  # CPU kinds TFLite/ONNX artifacts are also verified on (export.cpus), each ready here

    @classmethod
    def build(cls, formats=None, precisions=None, all_formats=False, data=None, output_dir=None, force=False,
              int8_io=False, dynamic_batch=False, calibration_samples=300, gates=None, target=None, max_size=None,
              optimizations=None, threads=None, verify_samples=None, latency_runs=30, model_name=None,
              raw_input=False, calibration=None, equalize=True, fallback=None, onnx_target=None,
              max_optimization_drop=None, check_cpus=()):
        """Plan, merge gates and validate; UserError (one line) for anything impossible.

        `fallback` None: on, except for the full-int8 targets (edgetpu, micro), which refuse an explicit True."""
        from export.cpus.verify import check_ready
        from export.fallback import FULL_INT8_TARGETS
        from export.onnx_targets import resolve_target
        from export.gates import merge_gates

        target = target or ("generic" if max_size else None)
        if fallback and target in FULL_INT8_TARGETS:
            raise UserError(f"--fallback keeps layers in float, which --target {target} cannot run; "
                            "use --no-fallback (equalization still applies)")

        request = cls(tuple(plan_variants(formats, precisions, all_formats)), merge_gates(gates), data,
                      None if output_dir is None else os.fspath(output_dir), force, dict(optimizations or {}),
                      target, max_size, int8_io, dynamic_batch, calibration_samples, verify_samples, threads,
                      latency_runs, model_name, raw_input, DEFAULT_METHOD if calibration is None else calibration,
                      bool(equalize), target not in FULL_INT8_TARGETS if fallback is None else bool(fallback),
                      onnx_target=resolve_target(onnx_target),
                      max_optimization_drop=None if max_optimization_drop is None else float(max_optimization_drop),
                      check_cpus=tuple(kind.name for kind in check_ready(check_cpus or ())))
        for check in CHECKS:
            check(request)
        return request

    @property
    def optimizing(self):
        """True when a prune/cluster/QAT step runs before conversion (`export.optimize.requested`)."""
        from export.optimize import requested

        return requested(self.optimizations)

    @property
    def pairs(self):
        """{(format, precision)} of the planned rows."""
        return {(v.format, v.precision) for v in self.variants}

    def check_source(self, has_keras_model):
        """Refuse what the source cannot give: a .keras artifact or optimizations from a SavedModel dir."""
        if has_keras_model:
            return
        if self.optimizing:
            raise UserError("--prune/--qat/--cluster need a Keras model, not a SavedModel dir")
        if ("keras", "fp32") in self.pairs:
            raise UserError("--format keras needs a Keras model; the source is a SavedModel dir")


def _check_optimizations(request):
    if request.max_optimization_drop is not None and (not request.optimizing or request.max_optimization_drop < 0):
        raise UserError(f"--max-optimization-drop {request.max_optimization_drop:g}: a number of points >= 0, "
                        "used with --prune/--prune-structure/--cluster/--qat")
    if not request.optimizing:
        return
    if request.data is None:
        raise UserError("--prune/--qat/--cluster need --data: they fine-tune on labeled images")
    if ("keras", "fp32") in request.pairs:
        raise UserError("--format keras cannot hold an optimized (tf_keras) model; use saved_model/tflite/onnx")
    if request.optimizations.get("qat") and any(v.precision != "int8" for v in request.variants
                                                if v.format in ("tflite", "onnx")):
        raise UserError("--qat produces int8 artifacts; allowed precisions with --qat: int8")


def _check_int8_io(request):
    if request.int8_io and ("tflite", "int8") not in request.pairs:
        raise UserError("--int8-io applies to TFLite int8; add --format tflite --precision int8")


def _check_target(request):
    wanted = TARGET_PRECISIONS.get(request.target)
    if wanted and not any(v.format == "tflite" and v.precision in wanted for v in request.variants):
        raise UserError(f"--target {request.target} checks TFLite {'/'.join(wanted)} artifacts; add --precision int8")
    if request.target and not any(target_for(v.format, v.precision, request.target) == request.target
                                  for v in request.variants):
        also = " (or --format micro)" if request.target == "micro" else ""
        raise UserError(f"--target {request.target} checks TFLite files; add --format tflite{also}")


def target_for(format, precision, target):
    """The edge target an artifact is checked against: a micro source always against micro; a tflite file
    against --target (only at the precisions `TARGET_PRECISIONS` names for it); anything else: None.

    Example:
        >>> target_for("micro", "int8", None), target_for("tflite", "fp32", "edgetpu"), target_for("onnx", "fp32", "x")
        ('micro', None, None)
    """
    if format == "micro":
        return "micro"
    wanted = TARGET_PRECISIONS.get(target)
    return target if format == "tflite" and target and (wanted is None or precision in wanted) else None


def _check_calibration(request):
    """A known method, asked only where something is calibrated (int8/int16x8 rows, not a QAT model)."""
    check_method(request.calibration)
    if request.calibration == DEFAULT_METHOD:
        return
    if request.optimizations.get("qat"):
        raise UserError(f"--calibration {request.calibration} does not apply to --qat: its int8 ranges are trained")
    if not any(v.calibrated for v in request.variants):
        raise UserError(f"--calibration {request.calibration} applies to calibrated rows; add --precision int8 "
                        "(or tflite:int16x8, or --format micro)")


CHECKS = (_check_optimizations, _check_int8_io, _check_target, _check_raw_input, _check_calibration)  # run in this order by ExportRequest.build
