"""`reszoo verify DIR` does not trust DIR: paths stay inside it, hashes come first, SavedModels need --trust.

One real export (tiny resnet20 -> TFLite fp32) per module; each case copies it, tampers with the copy, runs
the CLI and checks the exit code, the one-line message, that no traceback is printed and that no file under
the test's folder (the dir, its reference, decoys outside it) was written or changed.
"""
import os
import shutil

import pytest

from tests.helpers import add_saved_model_artifact, assert_one_line_user_error, edit_manifest, tree_sha256

NOT_RUN = "not run: SavedModel graphs can run arbitrary TF ops; pass --trust"


def point_first_artifact(export_dir, file):
    """Make the manifest's artifact entry name `file` (its sha256 kept: the real artifact's)."""
    edit_manifest(export_dir, lambda manifest: manifest["artifacts"][0].update(file=file))


def verify(run_cli, export_dir, *extra):
    return run_cli("verify", export_dir, "--verify-samples", "20", "--latency-runs", "0", *extra)


def assert_nothing_written(tmp_path, before):
    assert tree_sha256(tmp_path) == before


@pytest.mark.parametrize("name, make_file", [
    ("dot-dot", lambda tmp: "../../../../../../../../etc/passwd"),
    ("absolute", lambda tmp: "/etc/passwd"),
    ("outside copy of the real artifact", lambda tmp: "../decoy/tiny_fp32.tflite"),
])
def test_manifest_path_outside_the_dir_is_refused(run_cli, export_dir, tmp_path, name, make_file):
    """Before: /etc/passwd was hashed (exit 1) and an outside copy of a valid artifact was certified (exit 0)."""
    shutil.copytree(export_dir, tmp_path / "decoy")
    file = make_file(tmp_path)
    point_first_artifact(export_dir, file)
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert_one_line_user_error(result, repr(file), "outside the export dir", str(export_dir))
    assert_nothing_written(tmp_path, before)


def test_symlink_inside_the_dir_pointing_outside_is_refused(run_cli, export_dir, tmp_path):
    """Before: the link was followed and the decoy outside the dir certified (exit 0)."""
    decoy = tmp_path / "decoy.tflite"
    shutil.move(export_dir / "tiny_fp32.tflite", decoy)
    os.symlink(decoy, export_dir / "tiny_fp32.tflite")
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert_one_line_user_error(result, "'tiny_fp32.tflite'", "outside the export dir", str(export_dir))
    assert_nothing_written(tmp_path, before)


def test_relative_reference_file_outside_the_dir_is_refused(run_cli, export_dir, base_export, tmp_path):
    """reference.file goes through the same confinement as the artifacts."""
    shutil.copy(base_export[1], tmp_path / "outside.keras")
    edit_manifest(export_dir, lambda manifest: manifest.update(reference={"file": "../outside.keras",
                                                                          "format": "keras"}))
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert_one_line_user_error(result, "reference.file", "'../outside.keras'", "outside the export dir")
    assert_nothing_written(tmp_path, before)


def test_artifact_entry_without_its_fields_is_a_user_error(run_cli, export_dir, tmp_path):
    edit_manifest(export_dir, lambda manifest: manifest["artifacts"][0].update(file=7))
    before = tree_sha256(tmp_path)
    assert_one_line_user_error(verify(run_cli, export_dir), "needs string file")
    assert_nothing_written(tmp_path, before)


def test_saved_model_artifact_is_not_run_without_trust(run_cli, export_dir, tmp_path):
    """Before: the SavedModel ran and wrote the sentinel. Now its hash is checked, it is listed as not run,
    and the TFLite artifact alone decides the exit code (0)."""
    sentinel = tmp_path / "written_by_saved_model.txt"
    add_saved_model_artifact(export_dir, sentinel)
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert f"saved_model: sha256 ok, {NOT_RUN}" in result.stderr
    assert result.stdout.splitlines()[-1] == "not run, sha256 checked only (pass --trust to run them): saved_model"
    assert not sentinel.exists()
    assert_nothing_written(tmp_path, before)


def test_saved_model_with_trust_does_run(run_cli, export_dir, tmp_path):
    """--trust runs the graph: the sentinel appears (the threat above is real); its zeros fail the gate."""
    sentinel = tmp_path / "written_by_saved_model.txt"
    add_saved_model_artifact(export_dir, sentinel)
    result = verify(run_cli, export_dir, "--trust")
    assert result.returncode == 1 and "FAILED: saved_model" in result.stdout, result.stderr[-3000:]
    assert sentinel.exists()


def test_only_saved_models_means_nothing_verified(run_cli, export_dir, tmp_path):
    sentinel = tmp_path / "written_by_saved_model.txt"
    add_saved_model_artifact(export_dir, sentinel)
    edit_manifest(export_dir, lambda manifest: manifest.update(artifacts=manifest["artifacts"][1:]))
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert result.returncode == 1 and "NOT VERIFIED: no artifact was run" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not sentinel.exists()
    assert_nothing_written(tmp_path, before)


def test_saved_model_reference_without_trust_is_a_user_error(run_cli, export_dir, tmp_path):
    sentinel = tmp_path / "written_by_saved_model.txt"
    add_saved_model_artifact(export_dir, sentinel)
    edit_manifest(export_dir, lambda manifest: manifest.update(reference={"file": "saved_model",
                                                                          "format": "saved_model"}))
    before = tree_sha256(tmp_path)
    assert_one_line_user_error(verify(run_cli, export_dir), "parity reference", "pass --trust")
    assert not sentinel.exists()
    assert_nothing_written(tmp_path, before)


def test_changed_reference_is_an_integrity_problem(run_cli, export_dir, base_export, tmp_path):
    """Before: the artifact was blamed (gate failure, exit 1). Now: the reference's hash, before running."""
    import reszoo
    from export.core.metadata import save_model

    reference = tmp_path / "reference.keras"
    shutil.copy(base_export[1], reference)

    def use_copy(manifest):
        manifest["reference"]["path"] = manifest["source_model"]["path"] = str(reference)
    edit_manifest(export_dir, use_copy)
    save_model(reszoo.create_model("resnet20", width=4, input_shape=(32, 32, 3), num_classes=10), str(reference),
               {"model_name": "tiny"})  # retrained / replaced after export
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"reference {reference} changed since export (sha256" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "FAILED: tiny_fp32.tflite" not in result.stdout
    assert_nothing_written(tmp_path, before)


def test_untouched_copy_still_passes(run_cli, export_dir, tmp_path):
    before = tree_sha256(tmp_path)
    result = verify(run_cli, export_dir)
    assert result.returncode == 0 and "all artifacts passed" in result.stdout, result.stderr[-3000:]
    assert_nothing_written(tmp_path, before)
