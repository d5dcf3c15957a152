"""Pruning on the tf_keras twin: requested sparsity per layer, 2:4 structure, TFLite conversion, errors."""
import numpy as np
import pytest

from export.core.errors import UserError
from export.optimize import apply
from export.optimize.prune import is_m_by_n_sparse

SPARSITY_TOLERANCE = 0.01  # per pruned layer and overall (zeros / kernel weights of pruned Conv2D/Dense)
FIT = {"finetune_epochs": 1, "batch_size": 64, "learning_rate": 1e-3}


def accuracy(outputs, labels):
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


def prunable_kernels(model):
    return {layer.name: np.asarray(layer.kernel) for layer in model.layers
            if layer.__class__.__name__ in ("Conv2D", "Dense")}


def test_pruning_reaches_requested_sparsity_and_converts(trained_resnet, digits, no_legacy_env, tmp_path):
    from export.converters import tflite
    from export.runtimes import load_runner
    from export.serving_graph import to_saved_model

    x, y, x_held, y_held = digits
    pruned, report = apply(trained_resnet, {"prune": 0.6, **FIT}, (x, y))
    kernels = prunable_kernels(pruned)
    assert set(report["prune"]["layers"]) == set(kernels)
    for name, kernel in kernels.items():
        assert abs(np.mean(kernel == 0) - 0.6) <= SPARSITY_TOLERANCE, name
        assert report["prune"]["layers"][name] == pytest.approx(np.mean(kernel == 0), abs=1e-4)
    assert abs(report["prune"]["overall_sparsity"] - 0.6) <= SPARSITY_TOLERANCE
    assert report["finetune_epochs"] == 1 and report["qat"] is False
    assert not any("prune" in layer.name for layer in pruned.layers)  # strip_pruning removed the wrappers

    to_saved_model(pruned, tmp_path / "saved_model")
    path = tmp_path / "pruned_fp32.tflite"
    path.write_bytes(tflite.convert(str(tmp_path / "saved_model"), "fp32"))
    reference = pruned.predict(x_held, verbose=0)
    outputs = load_runner(path, "tflite").predict(x_held)
    assert np.max(np.abs(outputs - reference)) <= 1e-4
    assert accuracy(outputs, y_held) == accuracy(reference, y_held)


def test_two_four_structure_on_every_pruned_kernel(trained_resnet, digits):
    x, y, _, _ = digits
    pruned, report = apply(trained_resnet, {"prune_structure": "2:4", **FIT}, (x, y))
    assert report["prune"]["skipped_layers"] == ["conv1_conv"]  # 3 RGB input channels: not a multiple of 4
    for name in report["prune"]["layers"]:
        kernel = np.asarray(pruned.get_layer(name).kernel)
        assert is_m_by_n_sparse(kernel, (2, 4)), name
        assert np.mean(kernel == 0) >= 0.5
    assert not is_m_by_n_sparse(np.asarray(pruned.get_layer("conv1_conv").kernel), (2, 4))


def test_no_optimization_returns_the_model_unchanged(trained_resnet):
    model, report = apply(trained_resnet, {"prune": None, "qat": False, "cluster": None}, None)
    assert model is trained_resnet and report == {}


@pytest.mark.parametrize("options", [{"prune": 0.5}, {"qat": True}, {"cluster": 8}])
def test_optimizations_without_data_are_user_errors(trained_resnet, options, no_legacy_env):
    with pytest.raises(UserError, match="need --data for fine-tuning"):
        apply(trained_resnet, options, None)


@pytest.mark.parametrize("options, message", [
    ({"prune": 1.5}, "strictly between 0 and 1"),
    ({"prune_structure": "1:3"}, "allowed: 2:4"),
    ({"cluster": 1}, "integer >= 2"),
    ({"prune": 0.5, "finetune_epochs": 0}, "at least 2"),
])
def test_bad_options_are_user_errors(trained_resnet, digits, options, message):
    x, y, _, _ = digits
    with pytest.raises(UserError, match=message):
        apply(trained_resnet, options, (x, y))


def test_structure_with_a_different_sparsity_is_a_user_error(trained_resnet, digits):
    x, y, _, _ = digits
    with pytest.raises(UserError, match="fixes the sparsity at 0.5"):
        apply(trained_resnet, {"prune": 0.7, "prune_structure": "2:4"}, (x, y))
