"""`--check-cpu` / `--cpu`: the shipped default's int8 files verified on emulated arm64 (both int8 kernel paths)
and AVX2, per-CPU rows in the manifest, report and terminal; a kind not set up is one line with its install
command. Emulated kinds not set up here are skipped with that command (CI=true: they fail)."""
import json
import os

import pytest

from tests.helpers import assert_one_line_user_error, require_cpus, run_reszoo

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "saved_models", "resnet20_digits.keras")
CHECKED = ["arm64-dotprod", "arm64-v8", "x86-avx2"]  # --check-cpu arm64 --check-cpu x86-avx2, expanded


@pytest.fixture(scope="module")
def checked_export(tmp_path_factory):
    """(CompletedProcess, export dir) of the shipped default exported to TFLite and ONNX int8 with
    `--check-cpu arm64 --check-cpu x86-avx2`."""
    require_cpus(*CHECKED)
    out = tmp_path_factory.mktemp("cpus") / "default"
    done = run_reszoo("export", SHIPPED, "--format", "tflite", "--format", "onnx", "--precision", "int8",
                   "--data", "digits", "--latency-runs", "0", "--check-cpu", "arm64", "--check-cpu", "x86-avx2",
                   "--output", out)
    return done, out


def test_every_int8_file_passes_its_gate_on_every_checked_cpu(checked_export):
    done, out = checked_export
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        records = artifact["verified_on"]
        assert list(records) == CHECKED, artifact["file"]
        for cpu, record in records.items():
            assert record["passed"] and record["samples"] == 120 and record["top1_agreement"] >= 0.98, (cpu, record)
        assert records["arm64-dotprod"]["features"]["asimddp"] is True  # the dot-product kernels ran there ...
        assert records["arm64-v8"]["features"]["asimddp"] is False  # ... and the plain NEON ones here
        assert records["x86-avx2"]["features"]["avx512f"] is False


def test_the_cpu_rows_are_in_the_report_and_on_the_terminal(checked_export):
    done, out = checked_export
    report = (out / "report.md").read_text()
    assert "## Verified on CPUs" in report
    for cpu in CHECKED:
        for file in ("resnet20_digits_int8.tflite", "resnet20_digits_int8.onnx"):
            assert f"| {file} | {cpu} |" in report, (file, cpu)
    assert "verified on CPUs" in done.stdout and "cortex-a72" in done.stdout
    document = json.loads((out / "report.json").read_text())
    assert all(a["verified_on"]["arm64-v8"]["passed"] for a in document["artifacts"])


def test_verify_reruns_the_files_on_a_cpu_and_a_failure_names_it(checked_export, run_cli):
    _, out = checked_export
    done = run_cli("verify", out, "--cpu", "arm64-v8", "--latency-runs", "0", "--gate", "int8.min_agreement=1.01")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resnet20_digits_int8.onnx: FAILED on arm64-v8 (emulated as cortex-a72): top-1 agreement" in done.stdout
    assert "x86-avx2" not in done.stdout  # only this run's CPUs are shown, not the export's


def test_an_unknown_kind_and_a_kind_not_set_up_are_one_line(run_cli, tmp_path):
    unknown = run_cli("export", "--precision", "int8", "--check-cpu", "sparc", "--output", tmp_path / "a")
    assert_one_line_user_error(unknown, "'sparc'", "allowed: host, x86-avx2")
    env_run = run_cli("export", "--precision", "int8", "--check-cpu", "arm64", "--output", tmp_path / "b",
                      env={"RESZOO_CPU_CACHE": str(tmp_path / "empty-cache")})
    assert_one_line_user_error(env_run, "arm64-dotprod needs", "reszoo cpus install")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
