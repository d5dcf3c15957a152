"""ResNet-50 (random init, 224x224) to TFLite fp32 + int8 and ONNX int8, parity on real images (digits)."""
import os

import pytest


@pytest.mark.slow
def test_resnet50_tflite_fp32_int8_and_onnx_int8_parity(tmp_path):
    import keras

    import reszoo
    from export.pipeline import export_model

    keras.utils.set_random_seed(0)  # the same random weights every run

    # random init saturates softmax to one-hot, so compare logits: parity, not accuracy, is what is checked
    model = reszoo.create_model("resnet50", classifier_activation=None)
    result = export_model(model, formats=["tflite", "onnx"], precisions=["fp32", "int8"], data="digits",
                          output_dir=tmp_path / "r50", calibration_samples=100, verify_samples=48, latency_runs=3,
                          show_progress=False)
    by_name = {(a["format"], a["precision"]): a for a in result.artifacts}
    for key in (("tflite", "fp32"), ("onnx", "fp32")):
        parity = by_name[key]["parity"]
        assert parity["passed"], (key, parity["failures"])
    for key in (("tflite", "int8"), ("onnx", "int8")):
        parity = by_name[key]["parity"]
        assert parity["top1_agreement"] >= 0.9, (key, parity)
        assert parity["max_rel_err"] < 0.25, (key, parity)
        assert by_name[key]["size_bytes"] < 0.3 * by_name[("tflite", "fp32")]["size_bytes"]
    assert os.path.exists(os.path.join(result.output_dir, "manifest.json"))
