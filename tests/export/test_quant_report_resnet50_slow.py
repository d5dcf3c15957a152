"""The per-layer quantization report on ResNet-50 (random init, logits, 224x224 digits): it runs, names every row
by a model layer, and its output row matches the files run plainly. Time and memory are printed, not asserted."""
import math
import os
import resource
import time

import numpy as np
import pytest


@pytest.mark.slow
def test_resnet50_int8_reports(tmp_path):
    import keras
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    import reszoo
    from export.converters import onnx as onnx_converter
    from export.converters import tflite
    from export.data import sources
    from export.data.preprocess import make_spec, normalize
    from export.quantreport import layer_report
    from export.serving_graph import to_saved_model

    keras.utils.set_random_seed(0)
    model = reszoo.create_model("resnet50", classifier_activation=None)
    train, _ = sources.split(sources.load("digits", image_size=(224, 224)))
    x = normalize(train.x[:32], make_spec((224, 224)))
    saved_model = str(tmp_path / "saved_model")
    to_saved_model(model, saved_model)
    paths = {}
    for precision in ("fp32", "int8"):
        paths["tflite", precision] = str(tmp_path / f"m_{precision}.tflite")
        with open(paths["tflite", precision], "wb") as handle:
            handle.write(tflite.convert(saved_model, precision, x))
    paths["onnx", "fp32"] = onnx_converter.to_onnx(saved_model, str(tmp_path / "m_fp32.onnx"))
    paths["onnx", "int8"] = onnx_converter.quantize_int8(paths["onnx", "fp32"], str(tmp_path / "m_int8.onnx"), x)
    names = [layer.name for layer in model.layers]
    for fmt in ("tflite", "onnx"):
        start = time.perf_counter()
        report = layer_report(paths[fmt, "fp32"], paths[fmt, "int8"], fmt, x[:16], layer_names=names, max_samples=16)
        print(f"ResNet-50 {fmt} int8: {len(report['rows'])} rows, 16 samples, {time.perf_counter() - start:.1f} s, "
              f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        assert len(report["rows"]) >= 70 and all(set(r["layers"]) <= set(names) and r["layers"]
                                                 for r in report["rows"])
        assert sum(r["op"] in ("CONV_2D", "Conv") for r in report["rows"]) >= 50
    outputs = {}
    for precision in ("fp32", "int8"):
        interpreter = Interpreter(model_path=paths["tflite", precision],
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
        values = []
        for sample in x[:16]:
            interpreter.set_tensor(given["index"], sample[None])
            interpreter.invoke()
            values.append(interpreter.get_tensor(taken["index"]).astype("float64"))
        outputs[precision] = np.concatenate(values)
    noise = np.sum((outputs["int8"] - outputs["fp32"]) ** 2)
    expected = 10 * math.log10(np.sum(outputs["fp32"] ** 2) / noise)
    report = layer_report(paths["tflite", "fp32"], paths["tflite", "int8"], "tflite", x[:16], layer_names=names,
                          max_samples=16)  # 224 x 224 defaults to 8 (quantreport.samples_for_size)
    assert report["output"]["sqnr_db"] == pytest.approx(expected, abs=1e-3)
    assert os.path.getsize(paths["tflite", "int8"]) < os.path.getsize(paths["tflite", "fp32"])
