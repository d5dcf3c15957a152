"""export.manifest: hashes and sizes of files and dirs, artifact entries, reading and checking manifest.json."""
import gzip
import hashlib
import json
import os

import pytest

from export.core.errors import UserError
from export.manifest import (artifact_entry, artifact_path, gzip_size_of, integrity_problems, read_manifest,
                             sha256_of, size_of)

PAYLOAD = b"reszoo test payload\n" * 50


@pytest.fixture
def folder(tmp_path):
    """A dir tree like a SavedModel: two files at the top, one in a sub-folder."""
    root = tmp_path / "saved_model"
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"graph")
    (root / "fingerprint.pb").write_bytes(b"fp")
    (root / "variables" / "variables.data").write_bytes(PAYLOAD)
    return root


def write_manifest(export_dir, artifacts, **extra):
    (export_dir / "manifest.json").write_text(json.dumps({"schema": 1, "artifacts": artifacts, **extra}))


def test_sha256_of_file_is_the_plain_sha256(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(PAYLOAD)
    assert sha256_of(path) == hashlib.sha256(PAYLOAD).hexdigest()


def test_sha256_of_dir_covers_names_and_contents(folder, tmp_path):
    """A dir hashes sorted 'relative name NUL content' of its files: renaming or editing any file changes it."""
    expected = hashlib.sha256()
    for name in ("fingerprint.pb", "saved_model.pb", "variables/variables.data"):
        expected.update(name.encode() + b"\0" + (folder / name).read_bytes())
    before = sha256_of(folder)
    assert before == expected.hexdigest()
    assert sha256_of(folder) == before  # deterministic
    (folder / "fingerprint.pb").rename(folder / "fingerprint2.pb")
    renamed = sha256_of(folder)
    assert renamed != before
    (folder / "variables" / "variables.data").write_bytes(PAYLOAD + b"x")
    assert sha256_of(folder) not in (before, renamed)


def test_size_of_file_and_dir(folder):
    assert size_of(folder / "variables" / "variables.data") == len(PAYLOAD)
    assert size_of(folder) == len(b"graph") + len(b"fp") + len(PAYLOAD)


def test_gzip_size_of_file_and_dir(folder):
    """gzip -9 size per file, summed over a dir; repetitive payload compresses well below its size."""
    def gz(data):
        return len(gzip.compress(data, compresslevel=9, mtime=0))

    data_file = folder / "variables" / "variables.data"
    assert gzip_size_of(data_file) == gz(PAYLOAD) < len(PAYLOAD) // 5
    assert gzip_size_of(folder) == gz(b"graph") + gz(b"fp") + gz(PAYLOAD)


def test_artifact_entry_fields(tmp_path, folder):
    """An entry carries the given facts plus sha256/size/gzip size computed from the file (or dir) in the dir."""
    (tmp_path / "m_fp32.onnx").write_bytes(PAYLOAD)
    io = [{"name": "input", "shape": [-1, 8, 8, 3], "dtype": "float32", "quantization": None}]
    entry = artifact_entry(tmp_path, "m_fp32.onnx", "onnx", "fp32", io, io, parity={"passed": True})
    assert entry == {"file": "m_fp32.onnx", "format": "onnx", "precision": "fp32",
                     "sha256": hashlib.sha256(PAYLOAD).hexdigest(), "size_bytes": len(PAYLOAD),
                     "gzip_size_bytes": gzip_size_of(tmp_path / "m_fp32.onnx"), "inputs": io, "outputs": io,
                     "parity": {"passed": True}}
    folder_entry = artifact_entry(tmp_path, "saved_model", "saved_model", "fp32", [], [])
    assert folder_entry["sha256"] == sha256_of(folder) and folder_entry["size_bytes"] == size_of(folder)
    assert folder_entry["parity"] is None


def test_read_manifest_round_trip(tmp_path):
    (tmp_path / "m.tflite").write_bytes(PAYLOAD)
    write_manifest(tmp_path, [artifact_entry(tmp_path, "m.tflite", "tflite", "fp32", [], [])], labels=["a"])
    manifest = read_manifest(tmp_path)
    assert manifest["artifacts"][0]["file"] == "m.tflite" and manifest["labels"] == ["a"]
    assert integrity_problems(tmp_path, manifest) == []


def test_read_manifest_missing_dir(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_manifest(tmp_path / "nope")


def test_read_manifest_empty_dir(tmp_path):
    with pytest.raises(UserError, match="is empty"):
        read_manifest(tmp_path)


def test_read_manifest_dir_without_manifest(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(UserError, match="has no manifest.json"):
        read_manifest(tmp_path)


def test_read_manifest_bad_json(tmp_path):
    (tmp_path / "manifest.json").write_text('{"artifacts": [')
    with pytest.raises(UserError, match="cannot read"):
        read_manifest(tmp_path)


@pytest.mark.parametrize("document", [{"schema": 1}, {"artifacts": []}, {"artifacts": {}}, [1, 2]],
                         ids=["no-key", "empty-list", "not-a-list", "not-an-object"])
def test_read_manifest_no_artifacts(tmp_path, document):
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(UserError, match="lists no artifacts"):
        read_manifest(tmp_path)


def test_read_manifest_entry_without_required_fields(tmp_path):
    write_manifest(tmp_path, [{"file": "m.tflite", "format": "tflite"}])
    with pytest.raises(UserError, match="needs string file, format, precision, sha256"):
        read_manifest(tmp_path)


def test_integrity_problems_missing_and_modified(tmp_path):
    """A deleted artifact is reported missing, an edited one as a sha256 mismatch; an intact one not at all."""
    for name in ("a.tflite", "b.onnx", "c.tflite"):
        (tmp_path / name).write_bytes(PAYLOAD + name.encode())
    write_manifest(tmp_path, [artifact_entry(tmp_path, n, "tflite", "fp32", [], []) for n in ("a.tflite", "b.onnx",
                                                                                                "c.tflite")])
    manifest = read_manifest(tmp_path)
    os.remove(tmp_path / "a.tflite")
    (tmp_path / "b.onnx").write_bytes(PAYLOAD + b"tampered")
    problems = integrity_problems(tmp_path, manifest)
    assert len(problems) == 2, problems
    assert problems[0].startswith("a.tflite: missing")
    assert problems[1].startswith("b.onnx: sha256 mismatch") and "modified after export" in problems[1]


def test_integrity_problems_modified_file_inside_folder_artifact(tmp_path, folder):
    write_manifest(tmp_path, [artifact_entry(tmp_path, "saved_model", "saved_model", "fp32", [], [])])
    manifest = read_manifest(tmp_path)
    (folder / "variables" / "variables.data").write_bytes(b"other weights")
    assert [p.split(":")[0] for p in integrity_problems(tmp_path, manifest)] == ["saved_model"]


def test_integrity_problems_unlisted_reference(tmp_path):
    (tmp_path / "m.tflite").write_bytes(PAYLOAD)
    write_manifest(tmp_path, [artifact_entry(tmp_path, "m.tflite", "tflite", "fp32", [], [])],
                   reference={"file": "m.keras", "format": "keras"})
    (tmp_path / "m.keras").write_bytes(b"k")
    problems = integrity_problems(tmp_path, read_manifest(tmp_path))
    assert problems == ["reference 'm.keras' is not a listed artifact, so its sha256 is unknown"]


def test_artifact_path_inside(tmp_path, folder):
    assert artifact_path(tmp_path, "saved_model") == os.path.realpath(folder)
    assert artifact_path(tmp_path, "saved_model/variables/variables.data") == os.path.realpath(
        folder / "variables" / "variables.data")


@pytest.mark.parametrize("file", ["../outside.tflite", "sub/../../outside.tflite", "/etc/passwd", "", "."],
                         ids=["dotdot", "nested-dotdot", "absolute", "empty", "the-dir-itself"])
def test_artifact_path_refuses_paths_leaving_the_dir(tmp_path, file):
    export_dir = tmp_path / "export"
    (export_dir / "sub").mkdir(parents=True)
    (tmp_path / "outside.tflite").write_bytes(PAYLOAD)
    with pytest.raises(UserError, match="resolves outside the export dir"):
        artifact_path(export_dir, file)


def test_artifact_path_refuses_symlinks_out(tmp_path):
    """A symlinked artifact, or a symlink inside a folder artifact, that points outside the dir is refused."""
    export_dir = tmp_path / "export"
    (export_dir / "saved_model").mkdir(parents=True)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(PAYLOAD)
    os.symlink(secret, export_dir / "m.tflite")
    os.symlink(secret, export_dir / "saved_model" / "variables.data")
    (export_dir / "real.tflite").write_bytes(PAYLOAD)
    os.symlink(export_dir / "real.tflite", export_dir / "alias.tflite")  # a link that stays inside is fine
    with pytest.raises(UserError, match="'m.tflite' resolves outside"):
        artifact_path(export_dir, "m.tflite")
    with pytest.raises(UserError, match="'saved_model' resolves outside"):
        artifact_path(export_dir, "saved_model")
    assert artifact_path(export_dir, "alias.tflite") == os.path.realpath(export_dir / "real.tflite")


def test_read_manifest_refuses_entries_leaving_the_dir(tmp_path):
    """Confinement is applied on read, to artifacts and to a relative reference.file."""
    (tmp_path / "m.tflite").write_bytes(PAYLOAD)
    entry = artifact_entry(tmp_path, "m.tflite", "tflite", "fp32", [], [])
    write_manifest(tmp_path, [{**entry, "file": "../m.tflite"}])
    with pytest.raises(UserError, match="artifact '../m.tflite' resolves outside"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, [entry], reference={"file": "/etc/passwd", "format": "keras"})
    with pytest.raises(UserError, match="reference.file '/etc/passwd' resolves outside"):
        read_manifest(tmp_path)
