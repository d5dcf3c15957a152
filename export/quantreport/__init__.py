"""Per-layer quantization report: which layer of an int8 / int16x8 / dynamic artifact loses the signal.

For a quantized TFLite or ONNX file and the float file of the same model, every quantized op output becomes a
row, named by the Keras layer(s) it computes, with two errors against the float model on the given samples:

- `sqnr_db`, `rel_err`: this layer ALONE. The quantized op runs on the float model's inputs (quantized as
  its kernel reads them) and is compared with the float model's output of that op: its input quantization,
  weights and output quantization, nothing inherited. The report is ranked by it, worst (lowest) first.
- `sqnr_accumulated_db`, `rel_err_accumulated`: the artifact run end to end, everything before included.
  A layer after a broken one inherits its error here, so this column cannot say where the loss happened.

SQNR = 10·log10(Σf² / Σ(q−f)²) dB pooled over samples; rel_err = ‖q−f‖/‖f‖ = 10^(−SQNR/20); inf (JSON
null) = bit-exact. Rows also carry the float tensor's range and the quantized tensor's scale and zero point
(null for dynamic-range rows: their activations stay float and are quantized per call inside the op; such
a row is the op's float output with int8 weights and its per-call input quantization). `output` is the
model output's SQNR and relative error, end to end.

Why this mechanism (measured on the tiny trained ResNet and its copy with one channel x1000 after a BN+ReLU in
three chains, int8, 64 samples, Xeon with AVX-512 VNNI):
- Ranking by accumulated SQNR or by the SQNR drop from input to output finds only the first broken chain: after
  it every tensor is at ~0 dB, so the other two add no visible drop. onnxruntime's qdq_loss_debug ranks by
  xmodel_err (accumulated: inherited rows among the top 3, unnamed `Conv__84`) or qdq_err (the rounding of X
  alone: none of the three convs in its top 5), and keeps every activation of every sample (ResNet-50, 16
  samples: 6.1 GB peak, 21 s; this module: +0.8 GB, 7 s). TF's QuantizationDebugger re-converts from the
  SavedModel (int8 TFLite only) and compares each op with the float op on the same quantized inputs: its two
  worst by MSE are the x1000 tensors themselves, and the third conv is not in its top 5. ai-edge-quantizer's validate() is the
  accumulated comparison only (and a new dependency).
- The cut copy ranks exactly the three convs that read a x1000 channel first (-2.3 to -0.8 dB alone), the next
  row at 35.7 dB, in TFLite int8/int16x8 and ONNX QDQ/dynamic, from the files the export already wrote.
TFLite runs the builtin kernels (XNNPACK hides intermediate tensors), ONNX QDQ graphs run unfused; both are
integer-exact or float-literal, so the numbers do not depend on the CPU's int8 instructions. The deployed
runtimes round a few values differently: test model output 34.8 dB here vs 32.9 dB under XNNPACK (TFLite),
34.6 vs 34.9 dB with onnxruntime's fused int8 kernels.

Example:
    >>> import keras, tempfile
    >>> from export.converters.tflite import convert
    >>> from export.serving_graph import to_saved_model
    >>> folder = tempfile.mkdtemp()
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(keras.layers.Flatten(name="flat")(x)))
    >>> saved = to_saved_model(model, os.path.join(folder, "saved_model"))["path"]
    >>> x_calibration = np.random.default_rng(0).random((16, 8, 8, 3), dtype="float32")
    >>> for precision in ("fp32", "int8"):
    ...     _ = open(os.path.join(folder, f"m_{precision}.tflite"), "wb").write(
    ...         convert(saved, precision, calibration=x_calibration))
    >>> report = layer_report(os.path.join(folder, "m_fp32.tflite"), os.path.join(folder, "m_int8.tflite"),
    ...                       "tflite", x_calibration, layer_names=[l.name for l in model.layers])
    >>> report["output"]["sqnr_db"] > 10, sorted(worst_layers(report))  # (`worst_layers`: worst first)
    (True, ['conv', 'fc', 'flat'])
    >>> sorted(os.path.basename(path) for path in write_quant_report(folder, [report]).values())
    ['quant_report.json', 'quant_report.md', 'quant_report.png']
"""
import os

import numpy as np

from export.core.errors import UserError
from export.quantreport.names import main_layer
from export.quantreport.stats import ranking_key, rounded

DEFAULT_SAMPLES = 64  # SQNR of every layer settles within ~0.3 dB by 64 samples of the tiny digits model
SETTLING_PIXELS = DEFAULT_SAMPLES * 32 * 32  # ... at 32 x 32: the input pixels the statistics settled on
MIN_SAMPLES = 8


def samples_for_size(height, width):
    """How many samples the report runs at this input size: as many input pixels as DEFAULT_SAMPLES at 32 x 32
    (every tensor's SQNR sums over values that scale with the image area), at least MIN_SAMPLES.

    Example: samples_for_size(32, 32) -> 64; samples_for_size(224, 224) -> 8 (ResNet-50's report was 25 s on
    16 samples; each per-layer probe runs the cut model once per sample).
    """
    return int(min(DEFAULT_SAMPLES, max(MIN_SAMPLES, -(-SETTLING_PIXELS // (int(height) * int(width))))))


REPORT_JSON = "quant_report.json"
REPORT_MD = "quant_report.md"
REPORT_PNG = "quant_report.png"


def _measurers():
    from export.quantreport import onnx_layers, tflite_layers

    return {"tflite": tflite_layers.measure, "onnx": onnx_layers.measure}


def _checked_samples(samples, max_samples):
    samples = np.asarray(samples if samples is not None else [], dtype="float32")
    if samples.ndim < 2 or len(samples) == 0:
        raise UserError("the quantization report needs at least one preprocessed sample (N, H, W, C)")
    if max_samples is None:
        max_samples = samples_for_size(*samples.shape[1:3]) if samples.ndim == 4 else DEFAULT_SAMPLES
    return samples[:max_samples]


def _row(probe, position, layer_names):
    low, high = probe.accumulated.float_range()
    return {"layer": main_layer(probe.layers, layer_names) or probe.tensor, "layers": probe.layers,
            "op": probe.op, "tensor": probe.tensor, "position": position, "dtype": probe.dtype,
            "sqnr_db": rounded(probe.own.sqnr_db()), "rel_err": rounded(probe.own.rel_err(), 6),
            "sqnr_accumulated_db": rounded(probe.accumulated.sqnr_db()),
            "rel_err_accumulated": rounded(probe.accumulated.rel_err(), 6),
            "float_min": rounded(low, 6), "float_max": rounded(high, 6),
            "scale": probe.scale, "zero_point": probe.zero_point}


def layer_report(float_path, quantized_path, format, samples, layer_names=None, max_samples=None):
    """The per-layer report of one quantized artifact against the float file of the same model.

    format: "tflite" (float = the fp32 .tflite of the same SavedModel) or "onnx" (float = the fp32 .onnx the
    quantized one was made from). samples: preprocessed float32 inputs (N, H, W, C), the first `max_samples`
    (default: `samples_for_size` of their H x W) are run one at a time. layer_names: the Keras model's layer
    names in order (names rows reliably; without them names come from TF's scopes alone).
    Returns {"artifact", "format", "float_reference", "samples", "output": {"sqnr_db", "rel_err"},
    "rows": [row, ...] worst first}.
    """
    measurers = _measurers()
    if format not in measurers:
        raise UserError(f"no quantization report for format {format!r}; allowed: {', '.join(measurers)}")
    for path in (float_path, quantized_path):
        if not os.path.isfile(path):
            raise UserError(f"quantization report: {os.fspath(path)!r} is not a file")
    samples = _checked_samples(samples, max_samples)
    measurement = measurers[format](os.fspath(float_path), os.fspath(quantized_path), samples, layer_names)
    rows = sorted((_row(p, i, layer_names) for i, p in enumerate(measurement.probes)), key=ranking_key)
    return {"artifact": os.path.basename(os.fspath(quantized_path)), "format": format,
            "float_reference": os.path.basename(os.fspath(float_path)), "samples": measurement.samples,
            "output": {"sqnr_db": rounded(measurement.output.sqnr_db()),
                       "rel_err": rounded(measurement.output.rel_err(), 6)},
            "rows": rows}


def worst_rows(report, n=3):
    """The first row of each of the `n` worst layers (rows are worst own SQNR first), each layer once.

    Example:
        >>> [r["sqnr_db"] for r in worst_rows({"rows": [{"layer": "a", "sqnr_db": 1}, {"layer": "a", "sqnr_db": 2},
        ...                                              {"layer": "b", "sqnr_db": 3}]})]
        [1, 3]
    """
    rows = {}
    for row in report["rows"]:
        rows.setdefault(row["layer"], row)
    return list(rows.values())[:n]


def worst_layers(report, n=3):
    """The layer names of the first `n` rows (the worst own SQNR first), each name once.

    Example:
        >>> worst_layers({"rows": [{"layer": "a"}, {"layer": "b"}, {"layer": "a"}, {"layer": "c"}]}, n=2)
        ['a', 'b']
    """
    return [row["layer"] for row in worst_rows(report, n)]


def worst_layers_line(report, n=3):
    """One line for a failing artifact: its worst layers with their own SQNR.

    Example:
        >>> worst_layers_line({"rows": [{"layer": "conv2", "sqnr_db": -0.81}, {"layer": "fc", "sqnr_db": 30.2}]})
        'worst layers (SQNR alone): conv2 -0.8 dB, fc 30.2 dB'
    """
    return "worst layers (SQNR alone): " + ", ".join(f"{row['layer']} {_db(row['sqnr_db'])}"
                                                     for row in worst_rows(report, n))


def _db(value):
    if value is None:
        return "—"
    return "exact" if value == float("inf") else f"{value:.1f} dB"


def write_quant_report(export_dir, reports):
    """Write quant_report.json, quant_report.md and quant_report.png (SQNR per layer, one panel per artifact)
    into `export_dir`; everything is rendered before the first file is written, each file atomically."""
    from export.core.files import write_bytes, write_json
    from export.quantreport.render import markdown, png

    document = {"definitions": DEFINITIONS, "artifacts": list(reports)}
    text, image = markdown(document), png(document)
    paths = {name: os.path.join(export_dir, name) for name in (REPORT_JSON, REPORT_MD, REPORT_PNG)}
    write_json(paths[REPORT_JSON], document)
    write_bytes(paths[REPORT_MD], text.encode())
    write_bytes(paths[REPORT_PNG], image)
    return paths


DEFINITIONS = {
    "sqnr_db": "SQNR of this layer alone: the quantized op run on the float model's inputs vs the float op; "
               "10*log10(sum f^2 / sum (q-f)^2) over all samples; rows are ranked by it, lowest first; "
               "null = bit-exact",
    "rel_err": "||q - f|| / ||f|| of this layer alone",
    "sqnr_accumulated_db": "SQNR of this tensor in the quantized artifact run end to end (earlier layers' "
                           "errors included)",
    "rel_err_accumulated": "||q - f|| / ||f|| end to end",
    "float_min/float_max": "range of the float model's tensor on the samples",
    "scale/zero_point": "quantization of the stored tensor (null: float activations, dynamic range)",
    "layers": "every Keras layer the op computes (converters fuse conv, batch norm and activation)",
}
