"""QAT on the tf_keras twin: its TFLite int8 and ONNX (QDQ) artifacts pass the int8 parity gate."""
import numpy as np
import pytest

from export.optimize import apply
from export.targets import check_tflite

MIN_AGREEMENT = 0.98  # the int8 gate: top-1 agreement with the reference ...
MAX_ACCURACY_DROP = 0.01  # ... and at most 1 point of accuracy lost


def accuracy(outputs, labels):
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


def assert_int8_gate(outputs, reference, labels):
    agreement = float(np.mean(np.argmax(outputs, 1) == np.argmax(reference, 1)))
    assert agreement >= MIN_AGREEMENT
    assert accuracy(reference, labels) - accuracy(outputs, labels) <= MAX_ACCURACY_DROP


@pytest.fixture(scope="module")
def qat_export(trained_resnet, digits, tmp_path_factory):
    """(QAT tf_keras model, report, SavedModel dir) for the tiny trained ResNet."""
    from export.serving_graph import to_saved_model

    x, y, _, _ = digits
    model, report = apply(trained_resnet, {"qat": True, "finetune_epochs": 2, "batch_size": 64,
                                           "learning_rate": 1e-4}, (x, y))
    directory = tmp_path_factory.mktemp("qat") / "saved_model"
    to_saved_model(model, directory)
    return model, report, str(directory)


def test_qat_annotates_every_layer_and_folds_batch_norm(qat_export):
    _, report, _ = qat_export
    kinds = report["qat_details"]["annotated_layers"]
    assert report["qat"] is True
    assert kinds["conv1_bn"] == "default"  # folded into conv1_conv by tfmot
    option_a = {kinds[f"conv3_block1_0_{part}"] for part in ("subsample", "pad_in", "pad", "pad_out")}
    assert option_a == {"default"}, option_a  # stock pooling/permute/padding: tfmot's own rules


def test_qat_tflite_int8_passes_the_int8_gate_and_edgetpu_check(qat_export, digits, tmp_path):
    from export.converters import tflite
    from export.runtimes import load_runner

    model, _, saved_model = qat_export
    x, _, x_held, y_held = digits
    path = tmp_path / "qat_int8.tflite"
    path.write_bytes(tflite.convert(saved_model, "int8", calibration=x[:100]))
    outputs = load_runner(path, "tflite").predict(x_held)
    assert_int8_gate(outputs, model.predict(x_held, verbose=0), y_held)
    assert check_tflite(path, "edgetpu")["passed"]


@pytest.mark.parametrize("target", [None, "x86-avx2"], ids=["host", "x86-avx2"])
def test_qat_onnx_has_qdq_nodes_and_passes_the_int8_gate(qat_export, digits, tmp_path, target):
    """The host's file, and the x86-avx2 file on any host: its trained 8-bit weights are uint8 (U8U8), so no
    pair of them can saturate VPMADDUBSW's int16 on a CPU without VNNI (int8 ones did: 57 % agreement)."""
    import onnx

    from export.converters.onnx import to_onnx
    from export.cpus.run import run_on
    from export.cpus.verify import EMULATED_SAMPLES
    from export.onnx_targets import TARGETS, quantized_types, resolve_target, saturation_problems
    from export.runtimes import load_runner
    from tests.helpers import avx2_checks

    model, _, saved_model = qat_export
    _, _, x_held, y_held = digits
    path = tmp_path / "qat.onnx"
    to_onnx(saved_model, path, target=target)
    op_types = [node.op_type for node in onnx.load(path).graph.node]
    assert op_types.count("QuantizeLinear") >= 5 and op_types.count("DequantizeLinear") >= 5
    assert quantized_types(path)["weights"] == [TARGETS[resolve_target(target)].qat_weights]
    reference = model.predict(x_held, verbose=0)
    assert_int8_gate(load_runner(path, "onnx").predict(x_held), reference, y_held)
    if target == "x86-avx2":
        assert saturation_problems(path) == []
        for kind in avx2_checks():  # run where AVX2's kernels run, when this host has others
            count = EMULATED_SAMPLES
            assert_int8_gate(run_on(kind, path, "onnx", x_held[:count]), reference[:count], y_held[:count])


def test_qat_handles_highway_gates_and_converts_to_full_int8(digits, tmp_path, no_legacy_env):
    """Multiply/Subtract (highway gates) get the output-only config; the result is a full-int8 TFLite."""
    from export.converters import tflite
    from export.serving_graph import to_saved_model
    from reszoo.models.cifar import CifarResNet

    x, y, _, _ = digits
    model = CifarResNet(8, width=4, highway=True, input_shape=(32, 32, 3), num_classes=10)
    qat_model, report = apply(model, {"qat": True, "finetune_epochs": 1, "batch_size": 64}, (x[:128], y[:128]))
    kinds = report["qat_details"]["annotated_layers"]
    assert kinds["conv2_block1_gated"] == kinds["conv2_block1_diff"] == "output-only"
    to_saved_model(qat_model, tmp_path / "saved_model")
    path = tmp_path / "highway_qat_int8.tflite"
    path.write_bytes(tflite.convert(str(tmp_path / "saved_model"), "int8", calibration=x[:32]))
    targets = check_tflite(path, "edgetpu")
    assert targets["passed"], targets["problems"]
    assert {"MUL", "SUB"} <= {entry["op"] for entry in targets["ops"]}


def test_prune_then_qat_keeps_zeros_and_still_folds_batch_norm(trained_resnet, digits):
    """After strip_pruning the graph is re-cloned; BN must still fold into its conv and zeros must stay."""
    x, y, _, _ = digits
    model, report = apply(trained_resnet, {"prune": 0.5, "qat": True, "finetune_epochs": 1, "batch_size": 64},
                          (x[:256], y[:256]))
    kinds = report["qat_details"]["annotated_layers"]
    assert all(kind == "default" for name, kind in kinds.items() if name.endswith("_bn"))
    assert abs(report["overall_sparsity"] - 0.5) <= 0.01  # measured on the QAT model's kernels
