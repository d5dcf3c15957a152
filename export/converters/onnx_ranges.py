"""ONNX int8 activation ranges chosen by a calibration method (`export.calibration`), as an onnxruntime
calibration cache that `quantize_static(..., calibration_cache_path=...)` quantizes with.

1. min/max: onnxruntime's own MinMax calibrator on the prepared float graph (the tensors and ranges its
   `quantize_static` would use);
2. histograms: the same graph with those tensors as extra outputs runs on the same samples
   (`activation_batches`); every tensor's values go into `export.calibration.Histograms`;
3. the method's ranges are saved as a MinMax `TensorsData` cache; `quantize_static` reads them instead of
   calibrating, everything else (QDQ placement, per-channel weights, S8S8) as with minmax.

Example:
    >>> write_cache("prepared.onnx", readers, "entropy", "work/ranges.json", "work")  # doctest: +SKIP
"""
import os

import numpy as np

from export import calibration as methods


def recorded_ranges(prepared_path, reader, work_dir):
    """{tensor name: (min, max)} from onnxruntime's MinMax calibrator (the tensors quantize_static calibrates)."""
    from pathlib import Path

    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(Path(prepared_path), None, os.path.join(work_dir, "augmented_minmax.onnx"),
                                   calibrate_method=CalibrationMethod.MinMax)
    calibrator.collect_data(reader)
    return {name: (float(np.min(data.range_value[0])), float(np.max(data.range_value[1])))
            for name, data in calibrator.compute_data().items()}


def _with_outputs(prepared_path, names, path):
    """A copy of the graph at `path` that also outputs the tensors `names` (shape-inferred types)."""
    import onnx
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    from pathlib import Path

    model = load_model_with_shape_infer(Path(prepared_path))
    graph = model.graph
    known = {info.name: info for info in [*graph.value_info, *graph.input, *graph.output]}
    present = {output.name for output in graph.output}
    graph.output.extend(known[name] for name in names if name not in present)
    onnx.save(model, path)
    return path


def activation_batches(prepared_path, names, reader, work_dir):
    """Per calibration batch, {tensor name: values} of `names`, running the float graph in onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    path = _with_outputs(prepared_path, names, os.path.join(work_dir, "augmented_outputs.onnx"))
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    outputs = [output.name for output in session.get_outputs()]
    wanted = set(names)
    for feed in iter(reader.get_next, None):
        yield {name: value for name, value in zip(outputs, session.run(None, feed)) if name in wanted}


def graph_io(path):
    """Names of the graph's inputs and outputs (they keep their recorded range, `export.calibration.ranges`)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return {value.name for value in [*graph.input, *graph.output]}


def write_cache(prepared_path, readers, method, cache_path, work_dir):
    """Write the `method` ranges of the prepared graph as a quantize_static calibration cache at `cache_path`.

    `readers()`: a fresh CalibrationDataReader over the calibration samples (each pass reads them all).
    """
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    recorded = recorded_ranges(prepared_path, readers(), work_dir)
    histograms = methods.collect(recorded, activation_batches(prepared_path, list(recorded), readers(), work_dir))
    ranges = methods.ranges(method, histograms, methods.SCHEMES[("onnx", "int8")], kept=graph_io(prepared_path))
    as_arrays = {name: (np.array(lo, np.float32), np.array(hi, np.float32)) for name, (lo, hi) in ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, as_arrays), cache_path)
    return cache_path
