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


def test_the_table_has_one_row_per_format_and_precision():
    from export.formats import VARIANTS, variant

    assert [(v.format, v.precision) for v in VARIANTS] == pairs(all_formats=True)
    assert variant("tflite", "int16x8").calibrated and variant("onnx", "int8").calibrated
    assert not variant("onnx", "dynamic").calibrated and FORMATS["tflite"].calibrated == ("int8", "int16x8")
    with pytest.raises(UserError, match="does not offer precision 'fp16'"):
        variant("onnx", "fp16")


def test_every_row_names_a_converter_with_the_one_contract():
    import importlib
    import inspect

    from export.converters import tflite_raw, tflite_settings
    from export.formats import VARIANTS

    for row in VARIANTS:
        write = importlib.import_module(row.converter).write
        assert list(inspect.signature(write).parameters) == ["context", "precision", "path"], row
    for settings in (tflite_settings.SETTINGS, tflite_raw.SETTINGS):  # how, for exactly what the table offers
        assert set(settings) == set(FORMATS["tflite"].precisions)


def test_gates_are_a_view_of_the_table():
    from export.formats import VARIANTS
    from export.gates import DEFAULT_GATES

    for row in VARIANTS:
        assert DEFAULT_GATES[row.precision] == row.gate, row  # one gate per precision, whatever the format
    assert set(DEFAULT_GATES) == {"fp32", "fp16", "dynamic", "int8", "int16x8"}


def test_calibrated_rows_refuse_to_convert_without_samples(tmp_path):
    from export.converters import ConvertContext
    from export.formats import convert, variant

    for row in (variant("tflite", "int8"), variant("onnx", "int8")):
        with pytest.raises(UserError, match=f"{row.format} int8 needs calibration data"):
            convert(row, ConvertContext(str(tmp_path / "sm"), str(tmp_path)), str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
