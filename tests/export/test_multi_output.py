"""Multi-output models (feature-map backbones): exported to TFLite and ONNX, every output verified under one
naming and order in every runtime; broken outputs (swapped, a corrupted stage) fail and are named.

The backbone: 3 conv-BN-ReLU stages of stock layers (feature maps at strides 2, 4, 8), trained 3 epochs on the
embedded digits through a pooled classifier head so its activations are those of a trained net. The gates used
are the defaults (export.output_parity.FEATURE_SQNR_DB has the measured figures and why they hold on AVX2 and
AVX-512 VNNI CPUs); the broken artifacts are real conversions of altered models.
"""
import json

import numpy as np
import pytest

from export.core.errors import UserError
from export.outputs import Outputs, natural_order, reference_outputs
from export.output_parity import FEATURE_SQNR_DB, outputs_parity, sqnr_db

STAGES = ((2, 8), (2, 16), (2, 32))  # (stride, channels)
STAGE_NAMES = ["output_0", "output_1", "output_2"]
SIZE = 32


def _stages(keras, image):
    x, features = image, []
    for stride, channels in STAGES:
        for conv_stride in (stride, 1):
            x = keras.layers.Conv2D(channels, 3, strides=conv_stride, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        features.append(x)
    return features


@pytest.fixture(scope="module")
def trained():
    """(image input, [stage maps], class probabilities) of the backbone after 3 epochs on digits."""
    import keras

    from export.data import sources
    from export.data.preprocess import make_spec, normalize

    keras.utils.set_random_seed(0)
    image = keras.Input((SIZE, SIZE, 3), name="image")
    features = _stages(keras, image)
    probabilities = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features[-1]))
    classifier = keras.Model(image, probabilities)
    train, _ = sources.split(sources.load("digits", (SIZE, SIZE)))
    classifier.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    classifier.fit(normalize(train.x, make_spec((SIZE, SIZE))), train.y, epochs=3, batch_size=32, verbose=0)
    return image, features, probabilities


@pytest.fixture(scope="module")
def backbone(trained):
    import keras

    image, features, _ = trained
    return keras.Model(image, features, name="backbone")


@pytest.fixture(scope="module")
def held_out():
    """The preprocessed held-out digits (the split export_model verifies on)."""
    from export.data.preprocess import default_spec_for_input
    from export.data.splits import prepare, split_for_spec

    spec = default_spec_for_input((SIZE, SIZE, 3))
    _, part = split_for_spec("digits", spec)
    return prepare(part, spec)[:120]


def _export(model, tmp_path_factory, name, formats=("tflite", "onnx"), precisions=("fp32", "int8")):
    from export.pipeline import export_model

    return export_model(model, formats=list(formats), precisions=list(precisions), data="digits",
                        output_dir=tmp_path_factory.mktemp(name) / "export", latency_runs=2, verify_samples=120,
                        show_progress=False, notify=lambda message: None)


@pytest.fixture(scope="module")
def multi_export(backbone, tmp_path_factory):
    return _export(backbone, tmp_path_factory, "backbone")


def _convert(model, tmp_path, precision, calibration, fmt="tflite"):
    """A real conversion of `model` at `precision`, loaded in its runtime."""
    from export.converters import ConvertContext
    from export.formats import convert, variant
    from export.runtimes import load_runner
    from export.serving_graph import to_saved_model

    saved_model = to_saved_model(model, tmp_path / "saved_model")["path"]
    context = ConvertContext(saved_model, str(tmp_path), model, calibration, False, False, {})
    path = str(tmp_path / f"m_{precision}.{fmt}")
    convert(variant(fmt, precision), context, path)
    return load_runner(path, fmt)


# ---------------------------------------------------------------------------------------------- the pipeline
def test_every_output_passes_parity_in_tflite_and_onnx_fp32_and_int8(multi_export):
    assert multi_export.passed, [(a["file"], a["parity"]["failures"]) for a in multi_export.artifacts]
    converted = [a for a in multi_export.artifacts if a["format"] in ("tflite", "onnx")]
    assert sorted((a["format"], a["precision"]) for a in converted) == [
        ("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8")]
    for artifact in converted:
        parity = artifact["parity"]
        assert list(parity["outputs"]) == STAGE_NAMES and parity["output_order"] == STAGE_NAMES
        for name, output in parity["outputs"].items():
            assert output["kind"] == "features" and output["passed"], (artifact["file"], name, output)
            assert "top1_agreement" not in output  # no agreement on feature maps
            if artifact["precision"] == "fp32":  # the noise rule, per output
                assert output["max_rel_err"] <= output["tolerance"]
            else:
                assert output["sqnr_db"] >= FEATURE_SQNR_DB["int8"] == output["gate"]["min_sqnr_db"]
        assert parity["worst_output"] in STAGE_NAMES and parity["top1_agreement"] is None


def test_output_names_order_and_shapes_are_the_same_in_every_runtime(multi_export, backbone, held_out):
    from export.runtimes import KerasRunner, load_runner

    keras_runner = KerasRunner.from_model(backbone)
    expected = [tuple(t.shape[1:]) for t in backbone.outputs]
    reference = keras_runner.predict_all(held_out[:8])
    assert keras_runner.output_names == STAGE_NAMES
    for artifact in multi_export.artifacts:
        runner = load_runner(f"{multi_export.output_dir}/{artifact['file']}", artifact["format"])
        outputs = runner.predict_all(held_out[:8])
        assert runner.output_names == STAGE_NAMES, artifact["file"]
        assert [o.shape[1:] for o in outputs] == expected, artifact["file"]
        assert [o["signature_key"] for o in artifact["outputs"]] == STAGE_NAMES  # the manifest lists every output
        assert [tuple(o["shape"][1:]) for o in artifact["outputs"]] == expected
        if artifact["precision"] == "fp32":  # matched by name: each output is the reference's, not a neighbour's
            for ours, theirs in zip(outputs, reference):
                np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * float(np.ptp(theirs)))


def test_manifest_lists_every_output_tensor_with_its_quantization(multi_export):
    with open(f"{multi_export.output_dir}/manifest.json") as handle:
        manifest = json.load(handle)
    int8 = next(a for a in manifest["artifacts"] if a["file"].endswith("_int8.tflite"))
    assert len(int8["outputs"]) == 3 and all(o["dtype"] == "float32" for o in int8["outputs"])
    tflite_names = [o["name"] for o in int8["outputs"]]
    assert len(set(tflite_names)) == 3  # the TFLite tensor names, distinct from the signature keys
    assert set(int8["parity"]["outputs"]) == set(STAGE_NAMES)


def test_report_has_one_row_per_artifact_naming_the_worst_output(multi_export):
    from export.report import OUTPUT_COLUMNS

    text = open(f"{multi_export.output_dir}/report.md").read()
    table = text.split("## Outputs")[0]
    rows = [line for line in table.splitlines() if line.startswith("| backbone")]
    assert len(rows) == len(multi_export.artifacts)
    header = next(line for line in table.splitlines() if line.startswith("| artifact"))
    assert all(f"| {column} |" in header for column in OUTPUT_COLUMNS)
    for artifact in multi_export.artifacts:
        row = next(r for r in rows if r.startswith(f"| {artifact['file']} "))
        assert f"| {artifact['parity']['worst_output']} |" in row
    section = text.split("## Outputs")[1].split("\n## ")[0]  # up to the next section (Quantization)
    details = [line for line in section.splitlines() if line.startswith("| backbone")]
    assert len(details) == 3 * len(multi_export.artifacts)  # every output of every artifact


def test_reszoo_verify_reverifies_a_multi_output_export(run_cli, multi_export):
    result = run_cli("verify", multi_export.output_dir, "--latency-runs", "1", "--verify-samples", "60")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "worst output" in result.stdout and "FAIL" not in result.stdout


def test_verify_export_dir_fails_a_stricter_feature_gate_and_names_the_output(multi_export):
    from export.verify import verify_export_dir

    result = verify_export_dir(multi_export.output_dir, gates=["int8.min_sqnr_db=90"], samples=60, latency_runs=0)
    failed = {a["file"]: a["parity"]["failures"] for a in result["artifacts"] if not a["parity"]["passed"]}
    assert not result["passed"] and set(failed) == {"backbone_int8.tflite", "backbone_int8.onnx"}
    assert all(any(line.startswith("output_") and "< 90 dB" in line for line in lines) for lines in failed.values())


def test_predict_refuses_a_multi_output_export_in_one_line(multi_export):
    from export.predict import predict
    from export.runtimes import KerasRunner

    with pytest.raises(UserError, match="3 outputs .output_0, output_1, output_2."):
        predict(multi_export.output_dir, ["unused.png"], precision="fp32")
    with pytest.raises(UserError, match="3 outputs"):
        KerasRunner.from_model(_backbone_of(multi_export)).predict(np.zeros((1, SIZE, SIZE, 3)))


def _backbone_of(result):
    from export.core.metadata import load_model

    return load_model(f"{result.output_dir}/backbone.keras")[0]


# ------------------------------------------------------------------------------------------- broken artifacts
def test_a_corrupted_stage_fails_only_its_output(backbone, held_out, tmp_path):
    """Two output channels of the last conv of stage 3 swapped, converted to int8: output_2 fails, 0 and 1 pass."""
    import keras

    from export.runtimes import KerasRunner
    from export.gates import DEFAULT_GATES
    from export.verify import verify_runner

    broken = keras.models.clone_model(backbone)
    broken.set_weights(backbone.get_weights())
    last_conv = [layer for layer in broken.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    kernel = last_conv.get_weights()[0].copy()
    kernel[..., [0, 1]] = kernel[..., [1, 0]]
    last_conv.set_weights([kernel])
    reference = reference_outputs(KerasRunner.from_model(backbone), held_out, num_classes=10)
    for precision in ("int8", "fp32"):
        runner = _convert(broken, tmp_path / precision, precision, held_out)
        parity = verify_runner(runner, precision, held_out, reference, gates=DEFAULT_GATES, latency_runs=0)
        verdicts = {name: output["passed"] for name, output in parity["outputs"].items()}
        assert verdicts == {"output_0": True, "output_1": True, "output_2": False}, (precision, parity["failures"])
        assert not parity["passed"] and parity["worst_output"] == "output_2"
        assert all(line.startswith("output_2: ") for line in parity["failures"])


def test_swapped_outputs_of_one_shape_fail_both(trained, held_out, tmp_path):
    """An artifact whose two same-shape outputs come back under each other's names fails both (int8 and fp32)."""
    import keras

    from export.runtimes import KerasRunner
    from export.gates import DEFAULT_GATES
    from export.verify import verify_runner

    image, features, _ = trained
    side = keras.layers.Conv2D(32, 1, name="side")(features[1])
    side = keras.layers.MaxPooling2D()(side)  # the shape of stage 3
    model = keras.Model(image, {"a": features[2], "b": side})
    swapped = keras.Model(image, {"a": side, "b": features[2]})
    reference = reference_outputs(KerasRunner.from_model(model), held_out, num_classes=10)
    for precision in ("int8", "fp32"):
        parity = verify_runner(_convert(swapped, tmp_path / precision, precision, held_out), precision, held_out,
                               reference, gates=DEFAULT_GATES, latency_runs=0)
        assert {name: o["passed"] for name, o in parity["outputs"].items()} == {"a": False, "b": False}
        assert max(o["sqnr_db"] for o in parity["outputs"].values()) < 10.0


# ----------------------------------------------------------------------------------- dict and mixed outputs
def test_dict_outputs_keep_their_keys_in_natural_order(trained, tmp_path_factory):
    """Keys p2, p3, p10: TFLite lists them as strings (p10 first), every runner returns p2, p3, p10."""
    import keras

    image, features, _ = trained
    model = keras.Model(image, {"p10": features[2], "p2": features[0], "p3": features[1]}, name="pyramid")
    result = _export(model, tmp_path_factory, "pyramid", precisions=("fp32",))
    assert result.passed, [(a["file"], a["parity"]["failures"]) for a in result.artifacts]
    for artifact in result.artifacts:
        assert list(artifact["parity"]["outputs"]) == ["p2", "p3", "p10"]
        assert [o["shape"][1] for o in artifact["outputs"]] == [16, 8, 4]


def test_class_scores_next_to_features_are_verified_as_a_classifier(trained, tmp_path_factory):
    import keras

    image, features, probabilities = trained
    model = keras.Model(image, [probabilities, features[1]], name="mixed")
    result = _export(model, tmp_path_factory, "mixed", formats=("tflite",))
    assert result.passed, [(a["file"], a["parity"]["failures"]) for a in result.artifacts]
    int8 = next(a for a in result.artifacts if a["precision"] == "int8")["parity"]
    scores, features_out = int8["outputs"]["output_0"], int8["outputs"]["output_1"]
    assert scores["kind"] == "class_scores" and features_out["kind"] == "features"
    assert scores["top1_agreement"] >= 0.98 and int8["top1_agreement"] == scores["top1_agreement"]
    assert "accuracy" in scores and "min_agreement" in scores["gate"] and "min_sqnr_db" in features_out["gate"]
    assert result.report["reference"].get("accuracy") is not None  # measured on the class-score output


# ------------------------------------------------------------------------------------------------ unit level
def test_natural_order_puts_output_10_after_output_2():
    names = [f"output_{i}" for i in range(12)]
    assert natural_order(sorted(names)) == names


def test_sqnr_of_a_known_error():
    reference = np.ones((4, 10))
    assert sqnr_db(reference, reference * 1.1) == pytest.approx(20.0)
    assert sqnr_db(reference, reference) == 200.0


def test_missing_extra_and_reshaped_outputs_fail_by_name():
    reference = Outputs({"output_0": np.ones((2, 4, 4, 3)), "output_1": np.ones((2, 2, 2, 3))})
    parity = outputs_parity({"output_0": np.ones((2, 4, 4, 2)), "output_9": np.ones((2, 2, 2, 3))}, reference,
                            "fp32", {"fp32": {"noise_multiple": 20.0, "noise_floor": 1e-4}})
    assert not parity["passed"]
    assert parity["failures"] == ["output_1: missing (the artifact has output_0, output_9)",
                                  "output_9: not an output of the reference",
                                  "output_0: shape [4, 4, 2] != reference [4, 4, 3]"]
