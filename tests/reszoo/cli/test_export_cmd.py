"""`reszoo export` / `reszoo verify` as users run them: exit codes, one-line errors, no partial output."""
import os
import shutil

import pytest

from tests.helpers import assert_one_line_user_error


def leftovers(folder):
    return [name for name in os.listdir(folder) if ".partial-" in name]


def test_unknown_format_is_a_usage_error(run_cli, tmp_path):
    result = run_cli("export", "x.keras", "--format", "tflit", "--output", tmp_path / "out")
    assert_one_line_user_error(result, "tflit", "tflite")
    assert not os.path.exists(tmp_path / "out")


def test_precision_not_offered_by_the_format_lists_the_allowed_ones(run_cli, tmp_path):
    result = run_cli("export", "x.keras", "--format", "onnx", "--precision", "fp16", "--output", tmp_path / "out")
    assert_one_line_user_error(result, "'fp16'", "fp32, int8, dynamic")
    assert os.listdir(tmp_path) == []


def test_empty_data_dir_is_refused(run_cli, tmp_path):
    (tmp_path / "data" / "cats").mkdir(parents=True)
    result = run_cli("export", "x.keras", "--data", tmp_path / "data", "--output", tmp_path / "out")
    assert_one_line_user_error(result, "no images")
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_existing_output_needs_force(run_cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_cli("export", "x.keras", "--output", tmp_path / "out")
    assert_one_line_user_error(result, "--force")
    assert os.listdir(tmp_path / "out") == ["keep.txt"] and not leftovers(tmp_path)


def test_optimizations_without_data_are_refused(tiny_keras_path, tmp_path):
    from export.core.errors import UserError
    from export.pipeline import export_model

    for option in ({"prune": 0.5}, {"qat": True}, {"cluster": 8}):
        with pytest.raises(UserError, match="need --data"):
            export_model(tiny_keras_path, formats=["tflite"], output_dir=tmp_path / "out", optimizations=option,
                         show_progress=False)
    assert os.listdir(tmp_path) == []


def test_failed_gate_exits_1_and_keeps_the_artifacts(run_cli, tiny_keras_path, tmp_path):
    result = run_cli("export", tiny_keras_path, "--format", "tflite", "--precision", "fp32", "--gate",
                     "fp32.max_rel_err=0", "--data", "digits", "--verify-samples", "40", "--latency-runs", "0",
                     "--output", tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "FAILED: tiny_fp32.tflite" in result.stdout and "max abs error" in result.stdout
    assert {"tiny_fp32.tflite", "manifest.json", "report.md"} <= set(os.listdir(tmp_path / "out"))
    assert not leftovers(tmp_path)


def test_verify_passes_then_detects_a_tampered_artifact(run_cli, full_export, tmp_path):
    export_dir = tmp_path / "copy"
    shutil.copytree(full_export.output_dir, export_dir)
    kept = ["tiny.keras", "tiny_int8.tflite", "tiny_int8.onnx"]  # re-verify a few artifacts to keep this fast
    import json

    manifest = json.load(open(export_dir / "manifest.json"))
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["file"] in kept]
    json.dump(manifest, open(export_dir / "manifest.json", "w"))
    ok = run_cli("verify", export_dir, "--data", "digits", "--latency-runs", "2")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all artifacts passed" in ok.stdout

    with open(export_dir / "tiny_int8.tflite", "r+b") as handle:
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 0xFF]))
    tampered = run_cli("verify", export_dir, "--data", "digits")
    assert tampered.returncode == 1
    assert "tiny_int8.tflite: sha256 mismatch" in tampered.stderr and "Traceback" not in tampered.stderr


def test_verify_of_a_missing_dir_is_a_user_error(run_cli, tmp_path):
    assert_one_line_user_error(run_cli("verify", tmp_path / "nope"), "does not exist")
