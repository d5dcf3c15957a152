"""Graph features the converters must handle: grouped convolutions (ResNeXt), dynamic batch, pruning hook."""
import os

import numpy as np
import pytest


def grouped_conv_model():
    """A small untrained functional model with a grouped 3x3 conv (Keras runs it via an XLA function)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", name="stem")(inputs)
    y = layers.Conv2D(16, 3, padding="same", groups=4, name="grouped")(x)
    y = layers.BatchNormalization(name="bn")(y)
    x = layers.ReLU(name="relu")(layers.Add(name="add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="predictions")(x), name="grouped")


def test_grouped_conv_converts_with_dynamic_batch(tmp_path):
    import onnx

    from export.pipeline import export_model
    from export.runtimes import load_runner

    result = export_model(grouped_conv_model(), formats=["onnx", "tflite"], precisions=["fp32"], data="digits",
                          output_dir=tmp_path / "out", dynamic_batch=True, verify_samples=40, latency_runs=0,
                          show_progress=False)
    assert result.passed, [a["parity"]["failures"] for a in result.artifacts]
    onnx_path = os.path.join(result.output_dir, "grouped_fp32.onnx")
    graph = onnx.load(onnx_path).graph
    groups = [a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert 4 in groups and not [n.op_type for n in graph.node if "PartitionedCall" in n.op_type]
    for entry in result.artifacts:
        if entry["format"] in ("onnx", "tflite"):
            assert entry["inputs"][0]["shape"][0] == -1, entry
    runner = load_runner(onnx_path, "onnx")
    assert runner.batch is None and runner.predict(np.zeros((70, 32, 32, 3), "float32")).shape == (70, 10)
    assert {a["format"] for a in result.artifacts} == {"keras", "onnx", "tflite"}  # keras kept as reference


def test_pruning_hook_reaches_the_sparsity_and_shrinks_gzip(tiny_keras_path, full_export, tmp_path):
    from export.pipeline import export_model

    result = export_model(tiny_keras_path, formats=["tflite"], precisions=["fp32"], data="digits",
                          output_dir=tmp_path / "pruned", optimizations={"prune": 0.5, "finetune_epochs": 1},
                          verify_samples=60, latency_runs=0, show_progress=False,
                          max_optimization_drop=100)  # sparsity and size here; the accuracy gate has its own tests
    assert result.passed
    report = result.manifest["optimizations"]
    assert report["prune"]["overall_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert "held_out_accuracy_after" in report
    pruned = next(a for a in result.artifacts if a["file"] == "tiny_fp32.tflite")
    dense = next(a for a in full_export.artifacts if a["file"] == "tiny_fp32.tflite")
    assert pruned["gzip_size_bytes"] < 0.85 * dense["gzip_size_bytes"]
    assert result.manifest["reference"] == {"file": "saved_model", "format": "saved_model"}
