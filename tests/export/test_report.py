"""export.report: human sizes, report.json/report.md contents and the rich summary table for a hand-made manifest."""
import json

import pytest

from export.report import REPORT_JSON, REPORT_MD, build_report, human_size, summary_table, write_reports

PASSING = {"file": "m_fp32.tflite", "format": "tflite", "precision": "fp32", "size_bytes": 3 * 1024 * 1024,
           "gzip_size_bytes": 1536, "sha256": "ab" * 32,
           "parity": {"max_abs_err": 1.5e-6, "top1_agreement": 1.0, "accuracy_delta": 0.0,
                      "latency_ms_median": 0.1234, "passed": True, "failures": []}}
FAILING = {"file": "m_int8.onnx", "format": "onnx", "precision": "int8", "size_bytes": 900, "gzip_size_bytes": 700,
           "sha256": "cd" * 32,
           "parity": {"max_abs_err": 0.25, "top1_agreement": 0.9, "accuracy_delta": -2.5, "latency_ms_median": None,
                      "passed": False,
                      "failures": ["top-1 agreement 90.00% < 98.00%", "accuracy drop 2.50 points > 1"]}}
UNVERIFIED = {"file": "saved_model", "format": "saved_model", "precision": "fp32", "size_bytes": 2048,
              "gzip_size_bytes": 1024, "sha256": "ef" * 32, "parity": None}
MANIFEST = {"schema": 1, "artifacts": [PASSING, FAILING, UNVERIFIED],
            "data": {"source": "digits", "held_out_fraction": 0.2},
            "optimizations": {"prune": {"sparsity": 0.5}},
            "target_checks": {"m_int8.tflite": {"target": "edgetpu", "passed": False,
                                                "ops": [{"op": "CONV_2D", "count": 3}, {"op": "MEAN", "count": 1}],
                                                "problems": ["MEAN runs on the CPU"]}}}
REFERENCE = {"description": "tiny.keras (keras)", "accuracy": 0.975, "latency_ms_median": 0.5, "samples": 40}


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                        (3 * 1024 ** 2, "3.0 MiB"), (5 * 1024 ** 3, "5.0 GiB"),
                                        (2048 * 1024 ** 3, "2048.0 GiB")])
def test_human_size(size, text):
    assert human_size(size) == text


def test_build_report_fields():
    """The manifest's artifacts, optimizations, target checks and data carried over; wall time rounded."""
    report = build_report(MANIFEST, REFERENCE, passed=False, wall_time_s=12.3456, notes=("int8 I/O",))
    expected = {"passed": False, "wall_time_s": 12.35, "reference": REFERENCE,
                "artifacts": [PASSING, FAILING, UNVERIFIED], "optimizations": {"prune": {"sparsity": 0.5}},
                "target_checks": MANIFEST["target_checks"], "data": MANIFEST["data"], "notes": ["int8 I/O"]}
    assert {key: report.get(key) for key in expected} == expected  # further keys (e.g. machine facts) may follow


def test_build_report_defaults_for_a_minimal_manifest():
    report = build_report({"artifacts": [PASSING]}, REFERENCE, passed=True, wall_time_s=1)
    assert report["optimizations"] == {} and report["target_checks"] == {} and report["notes"] == []
    assert report["data"] is None


def test_write_reports_json_round_trips(tmp_path):
    report = build_report(MANIFEST, REFERENCE, passed=False, wall_time_s=12.3456, notes=("int8 I/O",))
    write_reports(tmp_path, report)
    assert json.loads((tmp_path / REPORT_JSON).read_text()) == report


def test_write_reports_markdown(tmp_path):
    """report.md: verdict, reference line, one table row per artifact, target checks, optimizations, notes."""
    write_reports(tmp_path, build_report(MANIFEST, REFERENCE, passed=False, wall_time_s=12.3456,
                                         notes=("int8 I/O",)))
    text = (tmp_path / REPORT_MD).read_text()
    lines = text.splitlines()
    assert lines[0] == "# Export report: FAILED"
    assert ("Reference: tiny.keras (keras); accuracy 97.50%, median batch-1 latency 0.500 ms "
            "(40 held-out samples from digits).") in lines
    assert ("| m_fp32.tflite | tflite | fp32 | 3.0 MiB | 1.5 KiB | 1.50e-06 | 100.00% | +0.00 | 0.123 | PASS |"
            in lines)
    assert ("| m_int8.onnx | onnx | int8 | 900 B | 700 B | 2.50e-01 | 90.00% | -2.50 | — | "
            "FAIL: top-1 agreement 90.00% < 98.00%; accuracy drop 2.50 points > 1 |") in lines
    unverified_row = "| saved_model | saved_model | fp32 | 2.0 KiB | 1.0 KiB | — | — | — | — | FAIL: not verified |"
    assert unverified_row in lines
    assert sum(line.startswith("| ") for line in lines) == 4  # header + 3 artifacts
    assert "## Target edgetpu: m_int8.tflite — PROBLEMS" in lines
    assert "Ops: CONV_2D×3, MEAN×1" in lines and "- MEAN runs on the CPU" in lines
    assert "## Optimizations" in lines
    fenced = text.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(fenced) == {"prune": {"sparsity": 0.5}}
    assert "- int8 I/O" in lines
    assert lines[-2] == "Total export wall time: 12.3 s"
    assert lines[-1].startswith("Slowest steps: —; peak resident memory ")


def test_report_profile_names_the_slowest_steps_and_peak_memory(tmp_path):
    """report.json keeps every step's seconds and the peak RSS; report.md lists the slowest steps first."""
    seconds = {"trace SavedModel": 2.0, "convert tflite int8": 9.5, "verify m_int8.tflite": 0.25}
    report = build_report(MANIFEST, REFERENCE, passed=True, wall_time_s=12.0, step_seconds=seconds)
    assert report["profile"]["step_seconds"] == seconds
    assert report["profile"]["peak_rss_mb"] > 10  # this test process holds numpy and more
    write_reports(tmp_path, report)
    last = (tmp_path / REPORT_MD).read_text().splitlines()[-1]
    assert last.startswith("Slowest steps: convert tflite int8 9.5 s, trace SavedModel 2.0 s, verify m_int8.tflite "
                           "0.2 s; peak resident memory ")


def test_write_reports_markdown_passed_without_extras(tmp_path):
    write_reports(tmp_path, build_report({"artifacts": [PASSING], "data": {"source": "my.npz"}}, REFERENCE,
                                         passed=True, wall_time_s=2))
    text = (tmp_path / REPORT_MD).read_text()
    assert text.startswith("# Export report: PASSED\n")
    assert "## Target" not in text and "## Optimizations" not in text
    assert "held-out samples from my.npz" in text


def test_write_reports_overwrites(tmp_path):
    write_reports(tmp_path, build_report(MANIFEST, REFERENCE, passed=False, wall_time_s=1))
    write_reports(tmp_path, build_report({"artifacts": [PASSING], "data": {}}, REFERENCE, passed=True,
                                         wall_time_s=1))
    assert json.loads((tmp_path / REPORT_JSON).read_text())["passed"] is True
    assert "m_int8.onnx" not in (tmp_path / REPORT_MD).read_text()


def test_summary_table_rows_and_colours():
    """One row per artifact in manifest order; PASS green, failures red with their reasons."""
    from rich.console import Console

    table = summary_table([PASSING, FAILING, UNVERIFIED], title="verify")
    assert table.title == "verify" and table.row_count == 3
    columns = {column.header: list(column.cells) for column in table.columns}
    assert columns["artifact"] == ["m_fp32.tflite", "m_int8.onnx", "saved_model"]
    assert columns["size"] == ["3.0 MiB", "900 B", "2.0 KiB"]
    assert columns["result"][0] == "[green]PASS[/green]"
    assert columns["result"][1].startswith("[red]FAIL: top-1 agreement 90.00% < 98.00%;")
    assert columns["result"][2] == "[red]FAIL: not verified[/red]"
    console = Console(width=250, record=True, color_system=None)
    console.print(table)
    rendered = console.export_text()
    assert "m_fp32.tflite" in rendered and "FAIL: not verified" in rendered and "[green]" not in rendered


def test_a_saturated_fp32_comparison_says_its_error_is_not_measurable():
    from export.report import row_cells

    saturated = {"file": "m_fp32.onnx", "format": "onnx", "precision": "fp32", "size_bytes": 10, "gzip_bytes": 5,
                 "parity": {"passed": True, "samples": 64, "informative_samples": 0, "max_abs_err": 0.0}}
    assert row_cells(saturated)[-1] == "PASS — softmax saturated on all 64 samples: logit error not measurable"
    saturated["parity"]["informative_samples"] = 3
    assert row_cells(saturated)[-1] == "PASS"


def test_report_names_the_artifacts_checked_on_fewer_samples_than_the_reference():
    from export.report import fewer_samples_lines

    artifacts = [{"file": "m.keras", "parity": {"samples": 32}}, {"file": "m_fp32.onnx", "parity": {"samples": 64}},
                 {"file": "m_int8.onnx", "parity": {"samples": 360}}]
    assert fewer_samples_lines(artifacts, 360)[0] == ("Checked on fewer samples (gate `max_samples`, round trip): "
                                                       "m.keras 32, m_fp32.onnx 64.")
    assert fewer_samples_lines(artifacts[2:], 360) == []
