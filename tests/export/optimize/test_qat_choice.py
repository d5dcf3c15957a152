"""QAT that helps: calibrated starting ranges, frozen BN statistics, and never worse than PTQ of the same model."""
import numpy as np
import pytest

from export.optimize import as_twin
from export.optimize.qat import annotate, custom_objects, quantize_aware_train, quantize_scheme
from export.optimize.qat_ranges import calibrate_ranges
from export.optimize.tfmot_loader import legacy_keras_env, load_tfmot


@pytest.fixture(scope="module")
def small(digits):
    """(tf_keras twin of an untrained depth-8 width-4 CIFAR ResNet, 128 digits, their labels)."""
    import keras

    from reszoo.models.cifar import CifarResNet

    keras.utils.set_random_seed(0)
    x, y, _, _ = digits
    return as_twin(CifarResNet(8, width=4, input_shape=(32, 32, 3), num_classes=10)), x[:128], y[:128]


def quantized_copy(model):
    tfmot = load_tfmot()
    annotated, _ = annotate(model, tfmot)
    with legacy_keras_env(), tfmot.quantization.keras.quantize_scope(custom_objects(model)):
        return tfmot.quantization.keras.quantize_apply(annotated, quantize_scheme(tfmot, None))


def value_range(values):
    return min(0.0, float(np.min(values))), max(0.0, float(np.max(values)))


def test_ranges_start_from_the_float_tensors_not_minus_six_to_six(small):
    """tfmot starts every range at [-6, 6]; calibrated, the logits and a ReLU output get their own ranges."""
    import tf_keras

    model, x, _ = small
    applied = calibrate_ranges(quantized_copy(model), model, x)
    pooled = tf_keras.Model(model.inputs, model.get_layer("avg_pool").output)(x).numpy()
    head = model.get_layer("predictions")
    logits = pooled @ head.kernel.numpy() + head.bias.numpy()
    relu = tf_keras.Model(model.inputs, model.get_layer("conv1_relu").output)(x).numpy()
    assert applied["quant_predictions/pre_activation"] == pytest.approx(value_range(logits), abs=1e-3)
    assert applied["quant_conv1_relu/output"] == pytest.approx(value_range(relu), abs=1e-3)
    (input_range,) = [r for key, r in applied.items() if key.endswith("/input")]  # quantize_layer[_N]: tf_keras names
    assert input_range == pytest.approx(value_range(x), abs=1e-3)


def batch_norm_means(model):
    return {getattr(layer, "layer", layer).name: np.asarray(getattr(layer, "layer", layer).moving_mean)
            for layer in model.layers if "BatchNorm" in type(getattr(layer, "layer", layer)).__name__}


@pytest.mark.parametrize("freeze", [True, False])
def test_qat_fine_tuning_keeps_batch_norm_statistics_only_when_frozen(small, freeze):
    model, x, y = small
    before = batch_norm_means(model)
    qat_model, report = quantize_aware_train(model, x, y, epochs=1, batch_size=32, learning_rate=1e-4,
                                             fixes={"freeze_batch_norm": freeze})
    after = batch_norm_means(qat_model)
    assert set(after) == set(before) and report["fixes"]["freeze_batch_norm"] is freeze
    unchanged = all(np.array_equal(after[name], before[name]) for name in before)
    assert unchanged is freeze


@pytest.mark.slow
def test_qat_on_the_hard_model_is_no_worse_than_ptq_and_its_int8_files_pass_against_the_original(
        hard_model_path, hard_npz, tmp_path):
    from export.pipeline import export_model

    result = export_model(hard_model_path, formats=["tflite", "onnx"], precisions=["int8"], data=hard_npz,
                          output_dir=tmp_path / "out", latency_runs=0, show_progress=False,
                          optimizations={"qat": True, "finetune_epochs": 2})
    report = result.manifest["optimizations"]
    choice, row = report["qat_choice"], report["gate"]["rows"][0]
    assert row["label"] == "QAT" and row["note"] == choice["note"]
    assert choice["accuracy"] == max(choice["qat_accuracy"], choice["ptq_accuracy"])
    assert report["qat"] is (choice["kept"] == "qat")
    assert f"kept {choice['kept'].upper()}" in choice["note"]
    for artifact in result.artifacts:
        if artifact["precision"] == "int8":
            assert artifact["parity"]["passed"], artifact["file"]
            assert artifact["parity"]["accuracy_delta_vs_original"] >= -1.0, artifact["file"]  # the int8 gate's
    assert result.passed
    print(report["gate"], choice)


def test_cluster_gets_its_own_row_with_accuracy_before_and_after(hard_model_path, hard_npz, tmp_path):
    from export.pipeline import export_model
    from export.report import markdown_table

    result = export_model(hard_model_path, formats=["tflite"], precisions=["fp32"], data=hard_npz,
                          output_dir=tmp_path / "out", latency_runs=0, show_progress=False,
                          optimizations={"cluster": 16, "finetune_epochs": 1})
    gate = result.manifest["optimizations"]["gate"]
    row = gate["rows"][0]
    assert row["label"] == "cluster 16" and row["accuracy_before"] > 0.5 and row["accuracy_after"] is not None
    assert row["delta_pts"] == pytest.approx(100 * (row["accuracy_after"] - row["accuracy_before"]), abs=0.01)
    assert result.passed is row["passed"]  # the fp32 file itself matches the clustered model
    table_row = markdown_table(result.artifacts, gate).splitlines()[2]
    assert table_row.startswith("| cluster 16 | optimization |") and "→" in table_row
    print(table_row)
