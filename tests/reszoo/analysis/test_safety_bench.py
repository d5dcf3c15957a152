"""`reszoo bench DIR` does not trust DIR: manifest hashes and path confinement are checked before any timing.

One real export (tiny resnet20 -> TFLite fp32) per module; each case copies it, damages the copy and runs
the CLI without --output (so a run that got as far as timing would write bench.* into DIR): the exit code,
the lines printed, no traceback, and no file under the test's folder written or changed.
"""
import json
import shutil

import pytest

from tests.helpers import add_saved_model_artifact, assert_one_line_user_error, tree_sha256

ARTIFACT = "tiny_fp32.tflite"


def bench(run_cli, export_dir, *extra):
    return run_cli("bench", export_dir, "--runs", "2", "--warmup", "0", "--samples", "8", "--batch", "2", *extra)


def truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip_a_bit], ids=["truncated", "bit-flipped"])
def test_damaged_artifact_exits_1_before_timing(run_cli, export_dir, tmp_path, damage):
    """Before: the damaged file was loaded and timed (crash or a bench of the wrong bytes)."""
    damage(export_dir / ARTIFACT)
    before = tree_sha256(tmp_path)
    result = bench(run_cli, export_dir)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [line for line in errors if f"{ARTIFACT}: sha256 mismatch" in line] and len(errors) == 1
    assert "nothing was timed" in result.stderr and "median ms" not in result.stdout
    assert tree_sha256(tmp_path) == before  # in particular no bench.json/.md/.png in DIR


def test_missing_artifact_exits_1(run_cli, export_dir, tmp_path):
    (export_dir / ARTIFACT).unlink()
    before = tree_sha256(tmp_path)
    result = bench(run_cli, export_dir)
    assert result.returncode == 1 and f"error: {ARTIFACT}: missing" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and tree_sha256(tmp_path) == before


def test_artifact_path_outside_the_dir_is_refused(run_cli, export_dir, tmp_path):
    """Before: the outside copy (a valid artifact) was benched as if it were the dir's."""
    shutil.copytree(export_dir, tmp_path / "decoy")
    manifest = json.loads((export_dir / "manifest.json").read_text())
    manifest["artifacts"][0]["file"] = f"../decoy/{ARTIFACT}"
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    before = tree_sha256(tmp_path)
    result = bench(run_cli, export_dir)
    assert_one_line_user_error(result, f"'../decoy/{ARTIFACT}'", "outside the export dir", str(export_dir))
    assert tree_sha256(tmp_path) == before


def test_changed_reference_exits_1(run_cli, export_dir, base_export, tmp_path):
    """The external reference .keras is pinned by source_model.sha256 for bench too."""
    reference = tmp_path / "reference.keras"
    shutil.copy(base_export[1], reference)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    manifest["reference"]["path"] = manifest["source_model"]["path"] = str(reference)
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    with open(reference, "ab") as handle:
        handle.write(b"\0")
    before = tree_sha256(tmp_path)
    result = bench(run_cli, export_dir)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"error: reference {reference} changed since export (sha256" in result.stderr
    assert "Traceback" not in result.stderr and tree_sha256(tmp_path) == before


def test_intact_copy_is_benched(run_cli, export_dir, tmp_path):
    result = bench(run_cli, export_dir, "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ARTIFACT in result.stdout and (tmp_path / "out" / "bench.json").is_file()


def test_saved_model_artifact_is_not_run_without_trust(run_cli, export_dir, tmp_path):
    """Before: bench loaded and timed every artifact, a SavedModel's graph code included."""
    sentinel = tmp_path / "written_by_saved_model.txt"
    add_saved_model_artifact(export_dir, sentinel)
    result = bench(run_cli, export_dir, "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not sentinel.exists()
    rows = json.loads((tmp_path / "out" / "bench.json").read_text())["rows"]
    assert [row["format"] for row in rows] == ["keras", "tflite"]  # the reference and the TFLite file only
