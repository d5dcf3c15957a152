"""`--format micro` through the pipeline and the CLI: manifest and report entries, the header hashed with the .cc,
the micro target check by default, a wrong array failing parity, and one-line user errors."""
import json
import os
import shutil

import numpy as np
import pytest

from export.core.errors import UserError
from tests.helpers import assert_one_line_user_error, edit_manifest


def micro_entry(result):
    entry, = [a for a in result.artifacts if a["format"] == "micro"]
    return entry


def test_pipeline_writes_the_micro_entry_its_facts_and_the_micro_target_check(micro_export, micro_files):
    from export.manifest import sha256_of

    assert micro_export.passed
    entry = micro_entry(micro_export)
    assert entry["file"] == "tiny_model_data.cc" and entry["precision"] == "int8" and entry["parity"]["passed"]
    assert entry["inputs"][0]["dtype"] == "int8" and entry["inputs"][0]["quantization"]["scale"] > 0
    assert entry["size_bytes"] == os.path.getsize(micro_files["cc"]) + os.path.getsize(micro_files["h"])
    assert entry["micro"]["header"] == "tiny_model_data.h" and entry["micro"]["symbol"] == "tiny_model_data"
    assert entry["micro"]["array_length"] == os.path.getsize(micro_files["tflite"])
    assert "CONV_2D" in entry["micro"]["ops"] and entry["micro"]["arena"]["arena_bytes"] > 0
    manifest = json.load(open(os.path.join(micro_export.output_dir, "manifest.json")))
    assert manifest["artifacts"][1]["sha256"] == entry["sha256"] == sha256_of(micro_files["cc"])
    check = manifest["target_checks"]["tiny_model_data.cc"]  # no --target given: micro sources are always checked
    assert check["target"] == "micro" and check["passed"] and {"op": "CONV_2D", "count": 7} in check["ops"]
    assert "tiny_int8.tflite" not in manifest["target_checks"]
    assert "| tiny_model_data.cc | micro | int8 |" in open(os.path.join(micro_export.output_dir, "report.md")).read()


def test_a_changed_header_or_a_wrong_array_fails_verification(micro_export, tmp_path):
    """Header edited: the sha256 of the one entry no longer matches. Array replaced by another model's int8
    flatbuffer (sha256 rewritten to match): verification runs that array and its parity fails."""
    import reszoo
    from export.converters import tflite
    from export.manifest import sha256_of
    from export.micro.source import render_source
    from export.serving_graph import to_saved_model
    from export.verify import verify_export_dir

    export_dir = tmp_path / "copy"
    shutil.copytree(micro_export.output_dir, export_dir)
    edit_manifest(export_dir, lambda m: m.update(artifacts=[a for a in m["artifacts"] if a["format"] == "micro"]))
    header = export_dir / "tiny_model_data.h"
    header.write_text(header.read_text().replace("arena_size = ", "arena_size = 1"))
    assert verify_export_dir(export_dir, data="digits", samples=60, latency_runs=0)["integrity_problems"] == [
        f"tiny_model_data.cc: sha256 mismatch (manifest {micro_entry(micro_export)['sha256'][:12]}..., "
        f"file {sha256_of(export_dir / 'tiny_model_data.cc')[:12]}...): modified after export"]

    shutil.copy(os.path.join(micro_export.output_dir, "tiny_model_data.h"), header)
    other = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)  # untrained
    to_saved_model(other, tmp_path / "other")
    flatbuffer = tflite.convert(str(tmp_path / "other"), "int8", calibration=_digits(40), int8_io=True)
    (export_dir / "tiny_model_data.cc").write_text(render_source(flatbuffer, "tiny_model_data", "tiny_model_data.h"))
    sha = sha256_of(export_dir / "tiny_model_data.cc")
    edit_manifest(export_dir, lambda m: m["artifacts"][0].update(sha256=sha))
    result = verify_export_dir(export_dir, data="digits", samples=60, latency_runs=0)
    assert result["integrity_problems"] == [] and not result["passed"]
    assert "top-1 agreement" in " ".join(result["artifacts"][0]["parity"]["failures"])


def _digits(count):
    from export.data import sources
    from export.data.preprocess import make_spec, normalize

    return normalize(sources.load("digits", (32, 32)).x[:count], make_spec((32, 32)))


def test_check_tflite_reads_the_array_of_a_micro_source(micro_files):
    from export.targets import check_tflite

    size = os.path.getsize(micro_files["tflite"])
    source_report, file_report = check_tflite(micro_files["cc"], "micro"), check_tflite(micro_files["tflite"], "micro")
    assert source_report == file_report and source_report["passed"]
    assert check_tflite(micro_files["cc"], "micro", max_size=size - 1)["problems"] == [
        f"file size {size:,} bytes exceeds the limit of {size - 1:,} bytes"]  # the array's size, not the .cc's


def test_requests_for_micro_are_validated_before_any_work():
    from export.request import ExportRequest

    request = ExportRequest.build(formats=["micro"], target="micro")
    assert [(v.format, v.precision) for v in request.variants] == [("micro", "int8")]  # int8 is micro's default
    with pytest.raises(UserError, match="format 'micro' does not offer precision 'fp32'; allowed: int8"):
        ExportRequest.build(formats=["micro"], precisions=["fp32"])
    with pytest.raises(UserError, match=r"--target micro checks TFLite files; add --format tflite \(or --format micro\)"):
        ExportRequest.build(formats=["onnx"], target="micro")
    with pytest.raises(UserError, match="--target gpu checks TFLite files; add --format tflite$"):
        ExportRequest.build(formats=["micro"], target="gpu")


def test_cli_exports_micro_end_to_end_and_refuses_another_precision(run_cli, tiny_keras_path, tmp_path):
    out = tmp_path / "out"
    result = run_cli("export", tiny_keras_path, "--format", "micro", "--data", "digits", "--output", out,
                     "--verify-samples", "60", "--latency-runs", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(os.listdir(out)) == ["manifest.json", "quant_report.json", "quant_report.md", "quant_report.png",
                                       "report.json", "report.md", "tiny_model_data.cc", "tiny_model_data.h"]
    assert "target micro tiny_model_data.cc: ok" in result.stdout and "all artifacts passed" in result.stdout

    refused = run_cli("export", tiny_keras_path, "--format", "micro", "--precision", "fp32", "--output", tmp_path / "x")
    assert_one_line_user_error(refused, "format 'micro'", "allowed: int8")
    assert not (tmp_path / "x").exists()


def test_predict_runs_a_micro_source_and_picks_it_from_its_export_dir(micro_export, micro_files, tmp_path):
    from PIL import Image

    from export.data import sources
    from export.predict import choose_artifact, predict

    held_out = sources.split(sources.load("digits", (32, 32)))[1]
    first = int(np.flatnonzero(held_out.y == 7)[0])
    Image.fromarray(held_out.x[first].round().clip(0, 255).astype("uint8")).save(tmp_path / "seven.png")
    from_source, = predict(micro_files["cc"], [tmp_path / "seven.png"], top_k=1)
    from_tflite, = predict(micro_files["tflite"], [tmp_path / "seven.png"], top_k=1)  # the same bytes
    assert from_source["top_k"][0]["label"] == from_tflite["top_k"][0]["label"]
    chosen = choose_artifact(micro_export.output_dir, artifact_name="tiny_model_data.cc")
    assert (chosen.format, chosen.precision) == ("micro", "int8")
