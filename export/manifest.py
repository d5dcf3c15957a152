"""`manifest.json`: what an export dir contains, how to feed it, and how to check it was not altered.

Schema:
    {"schema": 1,
     "artifacts": [{"file": path relative to the dir, "format", "precision", "sha256", "size_bytes",
                    "gzip_size_bytes", "inputs"/"outputs": [{"name", "shape", "dtype",
                    "quantization": {"scale", "zero_point"} | null}], "parity": {...}}],
     "reference": {"file" (relative) | "path" (absolute), "format"},   # what parity is measured against
     "source_model": {"name", "path", "sha256"}, "preprocessing": spec, "labels": [...],
     "data": {"source", "held_out_fraction", "split_seed", "calibration_samples", "verification_samples"},
     "versions": {package: version}, "options": {...}, "optimizations": {...}, "target_checks": {...}}

Example:
    >>> entry = {"file": "m.onnx"}
    >>> sorted(ARTIFACT_KEYS)[:3]
    ['file', 'format', 'gzip_size_bytes']
"""
import gzip
import hashlib
import json
import os
import tempfile
from importlib import metadata as package_metadata

from export.errors import UserError

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1
ARTIFACT_KEYS = ("file", "format", "precision", "sha256", "size_bytes", "gzip_size_bytes", "inputs", "outputs",
                 "parity")
VERSION_PACKAGES = ("reszoo", "tensorflow", "keras", "tf_keras", "tensorflow-model-optimization", "tf2onnx",
                    "onnx", "onnxruntime", "ai-edge-litert", "numpy")


def _files_of(path):
    """Sorted (relative name, absolute path) of a file, or of every file under a directory."""
    if os.path.isfile(path):
        return [(os.path.basename(path), path)]
    found = []
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            found.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
    return sorted(found)


def sha256_of(path):
    """Hex sha256 of a file; for a directory, of every file's relative name and content in sorted order."""
    digest = hashlib.sha256()
    is_dir = os.path.isdir(path)
    for name, full in _files_of(path):
        if is_dir:
            digest.update(name.encode() + b"\0")
        with open(full, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_of(path):
    """Bytes of a file, or the total of a directory's files."""
    return sum(os.path.getsize(full) for _, full in _files_of(path))


def gzip_size_of(path):
    """Bytes after gzip -9 of the file (sum over a directory's files): where pruning and clustering pay."""
    total = 0
    for _, full in _files_of(path):
        with open(full, "rb") as handle:
            total += len(gzip.compress(handle.read(), compresslevel=9, mtime=0))
    return total


def versions():
    """Installed versions of the packages that shaped the artifacts (read from package metadata)."""
    found = {}
    for name in VERSION_PACKAGES:
        try:
            found[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            found[name] = None
    return found


def artifact_entry(export_dir, file, format, precision, inputs, outputs, parity=None):
    """One manifest artifact entry; sha256 and sizes computed from the file in `export_dir`."""
    path = os.path.join(export_dir, file)
    return {"file": file, "format": format, "precision": precision, "sha256": sha256_of(path),
            "size_bytes": size_of(path), "gzip_size_bytes": gzip_size_of(path), "inputs": inputs,
            "outputs": outputs, "parity": parity}


def write_json(path, document):
    """Write `document` as indented JSON atomically (temp file + rename), creating the folder if needed."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=False, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask():
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_manifest(export_dir):
    """The manifest dict of `export_dir`; UserError when the dir or its manifest is missing or unreadable."""
    path = os.path.join(export_dir, MANIFEST_FILE)
    if not os.path.isdir(export_dir):
        raise UserError(f"export dir {os.fspath(export_dir)!r} does not exist; run `reszoo export` first")
    if not os.path.isfile(path):
        state = "is empty" if not os.listdir(export_dir) else f"has no {MANIFEST_FILE}"
        raise UserError(f"export dir {os.fspath(export_dir)!r} {state}; is it a `reszoo export` output dir?")
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path!r}: {error}") from None
    if not isinstance(manifest, dict) or not manifest.get("artifacts"):
        raise UserError(f"{path!r} lists no artifacts")
    return manifest


def integrity_problems(export_dir, manifest):
    """One line per artifact that is missing or whose sha256 differs from the manifest (tampered)."""
    problems = []
    for artifact in manifest["artifacts"]:
        path = os.path.join(export_dir, artifact["file"])
        if not os.path.exists(path):
            problems.append(f"{artifact['file']}: missing (listed in {MANIFEST_FILE})")
            continue
        actual = sha256_of(path)
        if actual != artifact["sha256"]:
            problems.append(f"{artifact['file']}: sha256 mismatch (manifest {artifact['sha256'][:12]}..., "
                            f"file {actual[:12]}...): modified after export")
    return problems
