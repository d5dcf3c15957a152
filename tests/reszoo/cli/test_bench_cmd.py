"""`reszoo bench` on a tiny export dir made by the real export pipeline; bad dirs give one line and exit 2."""
import json
import os

import pytest

from export.core.cpu import cpu_facts, describe_int8_flags
from tests.helpers import assert_one_line_user_error

BENCH_FILES = ("bench.json", "bench.md", "bench.png")


@pytest.fixture(scope="session")
def tiny_export_dir(tmp_path_factory):
    """A width-4 resnet20 (32x32) exported to keras + TFLite fp32/int8 + ONNX fp32 by `export_model`."""
    import reszoo
    from export.pipeline import export_model

    model = reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10)
    output_dir = tmp_path_factory.mktemp("bench") / "export"
    export_model(model, formats=["keras", "tflite", "onnx"], precisions=["fp32", "int8"], data="digits",
                 output_dir=output_dir, calibration_samples=100, verify_samples=32, latency_runs=2, threads=1,
                 show_progress=False)
    formats = {("tflite", "int8"), ("onnx", "int8")}
    assert formats <= {(a["format"], a["precision"]) for a in json.loads((output_dir / "manifest.json").read_text())
                       ["artifacts"]}
    return output_dir


@pytest.fixture(scope="session")
def bench_run(tiny_export_dir, tmp_path_factory):
    """One `reszoo bench` CLI run on the tiny export dir, outputs to a separate folder."""
    import subprocess
    import sys

    output = tmp_path_factory.mktemp("bench_out")
    done = subprocess.run([sys.executable, "-m", "reszoo", "bench", str(tiny_export_dir), "--runs", "3", "--warmup",
                           "1", "--batch", "4", "--threads", "1", "--samples", "40", "--output", str(output)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done, output


def test_bench_writes_exactly_the_three_files_and_nothing_partial(bench_run):
    _, output = bench_run
    assert sorted(os.listdir(output)) == sorted(BENCH_FILES)


def test_bench_json_has_one_row_per_artifact_plus_the_reference(bench_run, tiny_export_dir):
    _, output = bench_run
    report = json.loads((output / "bench.json").read_text())
    manifest = json.loads((tiny_export_dir / "manifest.json").read_text())
    non_keras = [a["file"] for a in manifest["artifacts"] if a["format"] != "keras"]
    assert [row["name"] for row in report["rows"]] == ["keras (reference)", *non_keras]
    reference, *artifacts = report["rows"]
    assert reference["speedup_vs_reference"] == pytest.approx(1.0)
    for row in artifacts:
        assert row["speedup_vs_reference"] == pytest.approx(reference["latency_median_ms"] / row["latency_median_ms"])
        assert row["size_bytes"] == os.path.getsize(tiny_export_dir / row["file"])
        assert 0 < row["latency_median_ms"] <= row["latency_p90_ms"]
        assert row["throughput_ips"] > 0 and 0.0 <= row["accuracy"] <= 1.0
    fp32_rows = [row for row in artifacts if row["precision"] == "fp32"]
    assert fp32_rows and all(row["top1_agreement"] == 1.0 for row in fp32_rows)
    assert report["machine"]["threads"] == 1 and report["machine"]["cpu_model"]
    assert report["settings"] == {"runs": 3, "warmup": 1, "batch": 4, "latency_batch": 1}
    assert report["roofline"]["sgemm_gflops"] > 0 and report["roofline"]["model_flops"] > 0


def test_bench_md_table_and_stdout_list_every_row(bench_run):
    done, output = bench_run
    markdown = (output / "bench.md").read_text()
    report = json.loads((output / "bench.json").read_text())
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table_rows) == len(report["rows"])
    assert "sgemm roofline" in markdown and report["machine"]["cpu_model"] in markdown
    assert describe_int8_flags(report["machine"]["int8_flags"]) in markdown
    assert all(row["name"] in done.stdout for row in report["rows"])


def test_bench_shows_int8_vs_fp32_of_each_format_from_the_same_run(bench_run):
    done, output = bench_run
    rows = {(r["format"], r["precision"]): r for r in json.loads((output / "bench.json").read_text())["rows"]}
    for fmt in ("tflite", "onnx"):
        int8, fp32 = rows[(fmt, "int8")], rows[(fmt, "fp32")]
        assert int8["speedup_vs_fp32"] == pytest.approx(fp32["latency_median_ms"] / int8["latency_median_ms"])
        assert fp32["speedup_vs_fp32"] == pytest.approx(1.0)
        assert f"{fmt} {int8['speedup_vs_fp32']:.2f}x" in done.stdout  # the int8 vs fp32 line
    assert "| vs fp32 |" in (output / "bench.md").read_text()


def test_bench_png_is_a_valid_image(bench_run):
    from PIL import Image

    _, output = bench_run
    path = output / "bench.png"
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


@pytest.mark.parametrize("make_dir", ["missing", "empty"])
def test_bench_on_a_missing_or_empty_dir_is_one_line_exit_2(run_cli, tmp_path, make_dir):
    target = tmp_path / "exports_here"
    if make_dir == "empty":
        target.mkdir()
    done = run_cli("bench", target)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: ")
    assert str(target) in done.stderr
    assert not (target / "bench.json").exists()


def test_bench_json_and_the_export_report_record_the_cpu_facts_of_export_core_cpu(bench_run, tiny_export_dir):
    _, output = bench_run
    machine = json.loads((output / "bench.json").read_text())["machine"]
    facts = cpu_facts()
    assert (machine["cpu_model"], machine["architecture"], machine["int8_flags"]) == \
        (facts["model"], facts["machine"], facts["int8_flags"])
    assert json.loads((tiny_export_dir / "report.json").read_text())["machine"] == facts


@pytest.mark.parametrize("args, fragments", [
    (["resnet2O"], ["unknown model 'resnet2O'; did you mean", "resnet20"]),
    (["saved_models/none.keras"], ["model file 'saved_models/none.keras' does not exist"]),
    (["resnet20", "--model", "resnet20"], ["give either DIR_OR_MODEL or --model, not both"]),
])
def test_bench_model_argument_mistakes_are_one_line_exit_2(run_cli, args, fragments):
    assert_one_line_user_error(run_cli("bench", *args), *fragments)


def test_input_size_is_refused_for_an_export_dir_and_a_saved_model_dir_is_no_bench_target(run_cli, tmp_path,
                                                                                           tiny_export_dir):
    assert_one_line_user_error(run_cli("bench", tiny_export_dir, "--input-size", "64"),
                               "--input-size applies to a model (--model NAME), not to an export dir")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert_one_line_user_error(run_cli("bench", tmp_path / "sm"), f"'{tmp_path / 'sm'}' is a SavedModel dir",
                               "allowed here: a registered model name", "an export dir")
