"""int8 you can rescue: a function-equivalent copy with three channels x1000 fails plain int8; the per-layer
report names the rescaled layers; equalization (default) and the float fallback each make it pass.

The copy (`rescaled.py`) equals the trained model in float (<= 1e-4), so every difference is quantization.
"""
import json

import numpy as np
import pytest

from tests.export.optimize.rescaled import rescaled_chains, rescaled_copy
from tests.helpers import assert_one_line_user_error

FORMATS = ["tflite", "onnx"]


@pytest.fixture(scope="module")
def rescaled(trained_resnet):
    """(the rescaled copy, the names of the three convs that read a x1000 channel)."""
    chains = rescaled_chains(trained_resnet)
    return rescaled_copy(trained_resnet, chains), [consumer for _, consumer in chains]


def export(model, tmp_path, name, **options):
    from export.pipeline import export_model

    # every conv quantized: onnx_target arm and TFLite int8 I/O (x86 ONNX targets and TFLite keep convs with < 16
    # output channels float for speed, and this model's rescaled layers are in its 4- and 8-channel stages)
    return export_model(model, formats=FORMATS, precisions=["int8"], data="digits", output_dir=tmp_path / name,
                        latency_runs=0, verify_samples=200, show_progress=False, model_name="rescaled",
                        onnx_target="arm", int8_io=True, **options)


def quantized(result):
    return [a for a in result.artifacts if a["precision"] == "int8"]


def failed(result):
    return [a["file"] for a in result.artifacts if not a["parity"]["passed"]]


def layer_of(name):
    """The Keras layer a report row is named by, for a conv: the BN fused into it (conv2_block1_2_conv -> _bn)."""
    return name.replace("_conv", "_bn")


def test_plain_int8_fails_and_the_report_ranks_the_rescaled_layers_first(rescaled, tmp_path):
    model, consumers = rescaled
    result = export(model, tmp_path, "plain", equalize=False, fallback=False)
    assert sorted(failed(result)) == ["rescaled_int8.onnx", "rescaled_int8.tflite"]
    document = json.loads((tmp_path / "plain" / "quant_report.json").read_text())
    expected = {layer_of(c) for c in consumers}
    for report in document["artifacts"]:
        assert {row["layer"] for row in report["rows"][:3]} == expected, report["artifact"]
    for artifact in quantized(result):
        worst = {w["layer"] for w in artifact["quantization"]["worst_layers"]}
        assert worst == expected and "fallback" not in artifact["quantization"]
    assert "worst layers: " in (tmp_path / "plain" / "report.md").read_text()


def test_equalization_by_default_rescues_it_fully_int8(rescaled, tmp_path):
    model, _ = rescaled
    result = export(model, tmp_path, "default")
    assert result.passed, [(a["file"], a["parity"]["failures"]) for a in result.artifacts]
    equalization = result.manifest["quantization"]["equalization"]
    assert equalization["applied"] and equalization["largest_scale"] > 100
    assert all("fallback" not in a["quantization"] for a in quantized(result))  # nothing had to stay float


def test_fallback_alone_rescues_it_with_the_rescaled_layers_in_float(rescaled, tmp_path):
    model, consumers = rescaled
    result = export(model, tmp_path, "fallback", equalize=False)
    assert result.passed, [(a["file"], a["parity"]["failures"]) for a in result.artifacts]
    for artifact in quantized(result):
        fallback = artifact["quantization"]["fallback"]
        assert fallback["passed"] and set(fallback["float_layers"]) <= {layer_of(c) for c in consumers}
    assert "float layers: " in (tmp_path / "fallback" / "report.md").read_text()
    assert "Float fallback: passed its gate with " in (tmp_path / "fallback" / "quant_report.md").read_text()
    document = json.loads((tmp_path / "fallback" / "quant_report.json").read_text())
    assert all(report["fallback"]["passed"] for report in document["artifacts"])


def test_edgetpu_stays_fully_int8_through_equalization(rescaled, tmp_path):
    model, _ = rescaled
    from export.pipeline import export_model

    result = export_model(model, formats=["tflite"], precisions=["int8"], data="digits", target="edgetpu",
                          output_dir=tmp_path / "edgetpu", latency_runs=0, verify_samples=200, show_progress=False)
    assert result.passed and result.manifest["quantization"]["fallback"]["enabled"] is False
    assert all(check["passed"] for check in result.manifest["target_checks"].values())


def test_cli_names_the_worst_layers_in_one_line_and_keeps_the_report(rescaled, tmp_path, run_cli):
    from export.core.metadata import save_model

    model, consumers = rescaled
    path = tmp_path / "rescaled.keras"
    save_model(model, str(path), {"model_name": "rescaled"})
    done = run_cli("export", path, "--format", "tflite", "--precision", "int8", "--int8-io", "--data", "digits",
                   "--no-equalize", "--no-fallback", "--latency-runs", "0", "--verify-samples", "200",
                   "--output", tmp_path / "out")
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("rescaled_int8.tflite: worst layers: ")]
    assert len(lines) == 1 and all(layer_of(c) in lines[0] for c in consumers), done.stdout
    rows = json.loads((tmp_path / "out" / "quant_report.json").read_text())["artifacts"][0]["rows"]
    assert {row["layer"] for row in rows[:3]} == {layer_of(c) for c in consumers}


def test_fallback_with_a_full_int8_target_is_one_line(run_cli, tmp_path):
    done = run_cli("export", "resnet20", "--precision", "int8", "--target", "edgetpu", "--fallback",
                   "--output", tmp_path / "out")
    assert_one_line_user_error(done, "--fallback", "edgetpu", "--no-fallback")
