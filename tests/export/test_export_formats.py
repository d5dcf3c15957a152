"""The formats table and `plan`: which (format, precision) pairs a --format/--precision choice builds."""
import pytest

from export.core.errors import UserError
from export.formats import FORMATS, plan


def pairs(formats=None, precisions=None, all_formats=False):
    return [(fmt.name, precision) for fmt, precision in plan(formats, precisions, all_formats)]


def test_defaults_are_tflite_and_onnx_fp32():
    assert pairs() == [("tflite", "fp32"), ("onnx", "fp32")]


def test_plain_precision_goes_to_every_format_offering_it():
    assert pairs(None, ["fp16"]) == [("tflite", "fp16")]
    assert pairs(["tflite", "onnx"], ["int8"]) == [("tflite", "int8"), ("onnx", "int8")]


def test_scoped_precision_applies_to_its_format_only():
    assert pairs(["tflite", "onnx"], ["fp32", "int8", "tflite:fp16", "tflite:dynamic"]) == [
        ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "dynamic"), ("tflite", "int8"),
        ("onnx", "fp32"), ("onnx", "int8")]
    assert pairs(None, ["onnx:dynamic"]) == [("onnx", "dynamic")]


def test_all_is_every_offered_pair():
    assert len(pairs(all_formats=True)) == sum(len(f.precisions) for f in FORMATS.values())


@pytest.mark.parametrize("formats, precisions, message", [
    (["tflit"], None, "unknown format 'tflit'; allowed: keras, saved_model, tflite, onnx"),
    (None, ["int4"], "unknown precision 'int4'; allowed: fp32, fp16, dynamic, int8, int16x8"),
    (["onnx"], ["fp16"], "format 'onnx' does not offer precision 'fp16'; allowed: fp32, int8, dynamic"),
    (None, ["onnx:fp16"], "format 'onnx' does not offer precision 'fp16'"),
    (["onnx"], ["tflite:fp16"], "format 'onnx' offers none of the requested precisions"),
])
def test_bad_choices_name_the_value_and_the_allowed_ones(formats, precisions, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        plan(formats, precisions)
