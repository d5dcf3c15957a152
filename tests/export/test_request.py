"""ExportRequest: planned and validated once; export_model takes it, or builds it from the same keywords."""
import dataclasses

import pytest

from export.core.errors import UserError
from export.request import ExportRequest


def test_build_plans_and_merges_gates_once():
    request = ExportRequest.build(formats=["tflite", "onnx"], precisions=["fp32", "int8"], data="digits",
                                  gates=["int8.min_agreement=0.9"], max_size=1024, output_dir=None)
    assert [(v.format, v.precision) for v in request.variants] == [
        ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]
    assert request.gates["int8"] == {"min_agreement": 0.9, "max_accuracy_drop": 1.0}
    assert request.target == "generic" and request.max_size == 1024  # --max-size alone checks generic
    assert request.calibration_samples == 300 and request.latency_runs == 30 and request.verify_samples is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.force = True


@pytest.mark.parametrize("options, message", [
    ({"formats": ["onnx"], "int8_io": True}, "--int8-io applies to TFLite int8"),
    ({"formats": ["tflite"], "target": "edgetpu"}, "--target edgetpu checks TFLite int8 artifacts"),
    ({"formats": ["onnx"], "target": "gpu"}, "--target gpu checks TFLite files"),
    ({"formats": ["tflite"], "optimizations": {"prune": 0.5}}, "need --data"),
    ({"formats": ["keras"], "optimizations": {"cluster": 8}, "data": "digits"}, "--format keras cannot hold"),
    ({"formats": ["tflite"], "optimizations": {"qat": True}, "data": "digits"}, "allowed precisions with --qat"),
    ({"gates": ["fp32.max_rel=1"]}, "unknown key 'max_rel'"),
    ({"formats": ["onnx"], "precisions": ["fp16"]}, "does not offer precision 'fp16'"),
])
def test_impossible_requests_are_one_line_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        ExportRequest.build(**options)


def test_source_checks():
    request = ExportRequest.build(formats=["keras"])
    request.check_source(has_keras_model=True)
    with pytest.raises(UserError, match="the source is a SavedModel dir"):
        request.check_source(has_keras_model=False)


def test_export_model_accepts_keywords_old_positionals_or_a_request():
    from export.pipeline import _request

    request = ExportRequest.build(formats=["tflite"], data="digits")
    assert _request((), request, {}) is request
    assert _request((["onnx"], ["int8"]), None, {"data": "digits"}).pairs == {("onnx", "int8")}
    assert _request((), ["tflite"], {"precisions": ["fp16"]}).pairs == {("tflite", "fp16")}  # old 2nd positional
    with pytest.raises(TypeError, match="either an ExportRequest or options"):
        _request((), request, {"force": True})
    with pytest.raises(TypeError, match="unexpected keyword"):
        _request((), None, {"formatz": ["onnx"]})


def test_export_with_a_request_does_not_plan_again(tmp_path, monkeypatch):
    """The pipeline runs the request it is given: planning and gate merging are not repeated."""
    import keras

    from export import formats, gates
    from export.pipeline import export_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    request = ExportRequest.build(formats=["tflite"], data="digits", output_dir=tmp_path / "out", verify_samples=20,
                                  latency_runs=0, gates=["fp32.noise_multiple=30"], model_name="small")

    def refuse(*args, **kwargs):
        raise AssertionError("planned or merged again")
    monkeypatch.setattr(formats, "plan", refuse)
    monkeypatch.setattr(gates, "merge_gates", refuse)
    result = export_model(model, request, show_progress=False, notify=lambda message: None)
    assert result.passed and [a["file"] for a in result.artifacts] == ["small.keras", "small_fp32.tflite"]
    assert result.manifest["options"]["gates"]["fp32"]["noise_multiple"] == 30.0
    assert result.artifacts[1]["parity"]["gate"]["noise_multiple"] == 30.0
