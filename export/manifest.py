"""`manifest.json`: what an export dir contains, how to feed it, and how to check it was not altered.

Schema:
    {"schema": 1,
     "artifacts": [{"file": path relative to the dir, "format", "precision", "sha256", "size_bytes",
                    "gzip_size_bytes", "inputs"/"outputs": [{"name", "shape", "dtype",
                    "quantization": {"scale", "zero_point"} | null}], "parity": {...},
                    "input" (--raw-input runs: export.raw_input.input_contract)}],
     "reference": {"file" (relative) | "path" (absolute), "format"},   # what parity is measured against
     "source_model": {"name", "path", "sha256"}, "preprocessing": spec, "labels": [...],
     "data": {"source", "held_out_fraction", "split_seed", "calibration_samples", "verification_samples"},
     "versions": {package: version}, "options": {..., "calibration": export.calibration method},
     "optimizations": {..., "steps", "gate" (export.optimize.gate: rows against the original, passed, hint),
                       "qat_choice" (export.optimize.qat_choice)}, "target_checks": {...}}
     An optimized run's artifact parity also has "accuracy_delta_vs_original" (points).

Example:
    >>> import tempfile
    >>> from export.core.files import write_bytes
    >>> folder = tempfile.mkdtemp()
    >>> path = write_bytes(os.path.join(folder, "m_fp32.tflite"), b"TFL3")
    >>> entry = artifact_entry(folder, "m_fp32.tflite", "tflite", "fp32", inputs=[], outputs=[])
    >>> write_json(os.path.join(folder, MANIFEST_FILE), {"schema": SCHEMA_VERSION, "artifacts": [entry]})
    >>> manifest = read_manifest(folder)
    >>> integrity_problems(folder, manifest)
    []
    >>> path = write_bytes(path, b"changed")
    >>> integrity_problems(folder, manifest)
    ['m_fp32.tflite: sha256 mismatch (manifest ..., file ...): modified after export']
"""
import gzip
import hashlib
import json
import os
from importlib import metadata as package_metadata

from export.core.files import current_umask, write_json  # noqa: F401  (re-exported: the one atomic writer)
from export.core.errors import UserError

MANIFEST_FILE = "manifest.json"
COMPANION_SUFFIXES = {".cc": (".h",)}  # an artifact file's suffix -> files beside it hashed with it (TFLM .cc + .h)
SCHEMA_VERSION = 1
ARTIFACT_KEYS = ("file", "format", "precision", "sha256", "size_bytes", "gzip_size_bytes", "inputs", "outputs",
                 "parity")
VERSION_PACKAGES = ("reszoo", "tensorflow", "keras", "tf_keras", "tensorflow-model-optimization", "tf2onnx",
                    "onnx", "onnxruntime", "ai-edge-litert", "numpy")


def _files_of(path):
    """Sorted (relative name, absolute path) of a file and its companions (`companions`), or of every file
    under a directory."""
    if os.path.isfile(path):
        return [(os.path.basename(path), path)] + companions(path)
    found = []
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            found.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
    return sorted(found)


def companions(path):
    """[(name, path)] of the files that belong to the artifact file `path` (`COMPANION_SUFFIXES`) and exist
    beside it as plain files (a link is left out, so the sha256 no longer matches).

    Example:
        >>> companions("/nonexistent/m_model_data.cc"), COMPANION_SUFFIXES[".cc"]
        ([], ('.h',))
    """
    stem, suffix = os.path.splitext(os.fspath(path))
    found = [stem + extra for extra in COMPANION_SUFFIXES.get(suffix, ())]
    return [(os.path.basename(p), p) for p in found if os.path.isfile(p) and not os.path.islink(p)]


def sha256_of(path):
    """Hex sha256 of a file; for a directory or a file with companions, of every file's relative name and
    content in sorted order."""
    digest = hashlib.sha256()
    files = _files_of(path)
    named = os.path.isdir(path) or len(files) > 1
    for name, full in files:
        if named:
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


def artifact_path(export_dir, file, entry="artifact"):
    """Real path of manifest entry `file` inside `export_dir`; UserError when it (or a link in it) leaves the dir.

    The one path-confinement check for every manifest path (artifacts, a relative `reference.file`): `..`,
    absolute paths and symlinks, also those inside a SavedModel folder, must resolve under realpath(DIR).

    Example:
        >>> artifact_path("/tmp", "../etc/passwd")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: manifest.json artifact '../etc/passwd' resolves outside the export dir '/tmp'; ...
    """
    root = os.path.realpath(export_dir)
    path = os.path.realpath(os.path.join(root, file)) if isinstance(file, str) and file else root
    if not _inside(path, root) or _links_out_of(path, root):
        raise UserError(f"{MANIFEST_FILE} {entry} {file!r} resolves outside the export dir "
                        f"{os.fspath(export_dir)!r}; refusing to read it")
    return path


def _inside(path, root):
    """True when real path `path` lies strictly under real path `root`."""
    return path != root and os.path.commonpath([root, path]) == root


def _links_out_of(folder, root):
    """True when any entry under `folder` (a SavedModel dir) resolves outside `root`."""
    if not os.path.isdir(folder):
        return False
    for current, dirs, names in os.walk(folder):
        for name in dirs + names:
            if not _inside(os.path.realpath(os.path.join(current, name)), root):
                return True
    return False


MANIFEST_FIELDS = (("file", str), ("format", str), ("precision", str), ("sha256", str))  # what readers rely on


def _check_entries(export_dir, manifest, path):
    """UserError unless every artifact has the fields readers rely on and every path stays inside the dir."""
    for artifact in manifest["artifacts"]:
        if not isinstance(artifact, dict) or not all(isinstance(artifact.get(k), t) for k, t in MANIFEST_FIELDS):
            raise UserError(f"{path!r}: artifact entry {artifact!r} needs string {', '.join(dict(MANIFEST_FIELDS))}")
        artifact_path(export_dir, artifact["file"])
    reference = manifest.get("reference") or {}
    if not isinstance(reference, dict):
        raise UserError(f"{path!r}: 'reference' must be an object")
    if reference.get("file") is not None:
        artifact_path(export_dir, reference["file"], "reference.file")


def read_manifest(export_dir):
    """The manifest dict of `export_dir`; UserError when the dir or its manifest is missing or unreadable,
    or when a listed path resolves outside the dir (see `artifact_path`).

    Example:
        >>> read_manifest("exports/never-made")
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: export dir 'exports/never-made' does not exist; run `reszoo export` first
    """
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
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list) or not manifest["artifacts"]:
        raise UserError(f"{path!r} lists no artifacts")
    _check_entries(export_dir, manifest, path)
    return manifest


def _hash_problem(label, path, expected):
    """'LABEL: sha256 mismatch ...' when the file at `path` does not hash to `expected`, else None."""
    actual = sha256_of(path)
    if actual == expected:
        return None
    return f"{label}: sha256 mismatch (manifest {str(expected)[:12]}..., file {actual[:12]}...): modified after export"


def reference_problems(export_dir, manifest):
    """Lines for a parity reference whose bytes are not pinned by the manifest or changed since export.

    A relative `reference.file` must be a listed artifact (so its sha256 is checked with the others); an
    external `reference.path` must hash to `source_model.sha256`. A reference that does not exist is left to
    the reader (a user error there: nothing was tampered with).

    Example:
        >>> reference_problems("/tmp", {"artifacts": [], "reference": {"file": "m.keras"}})
        ["reference 'm.keras' is not a listed artifact, so its sha256 is unknown"]
    """
    reference, source = manifest.get("reference") or {}, manifest.get("source_model") or {}
    if reference.get("file") is not None:
        listed = {artifact["file"] for artifact in manifest["artifacts"]}
        return [] if reference["file"] in listed else [
            f"reference {reference['file']!r} is not a listed artifact, so its sha256 is unknown"]
    path = reference.get("path")
    if not path or not os.path.exists(path):
        return []
    expected = source.get("sha256") if source.get("path") == path else None
    if not expected:
        return [f"reference {path} has no sha256 in {MANIFEST_FILE} (source_model.sha256); cannot tell if it changed"]
    actual = sha256_of(path)
    return [] if actual == expected else [
        f"reference {path} changed since export (sha256 {actual[:12]}..., manifest {expected[:12]}...); "
        "the artifacts were verified against the old model"]


def integrity_problems(export_dir, manifest):
    """One line per artifact that is missing or whose sha256 differs from the manifest (tampered), then the
    reference's problems (`reference_problems`). Paths are confined to the dir (`artifact_path`).

    Example:
        >>> import tempfile
        >>> integrity_problems(tempfile.mkdtemp(), {"artifacts": [{"file": "m.tflite", "sha256": "0" * 64}]})
        ['m.tflite: missing (listed in manifest.json)']
    """
    problems = []
    for artifact in manifest["artifacts"]:
        path = artifact_path(export_dir, artifact["file"])
        if not os.path.exists(path):
            problems.append(f"{artifact['file']}: missing (listed in {MANIFEST_FILE})")
            continue
        problems += filter(None, [_hash_problem(artifact["file"], path, artifact["sha256"])])
    return problems + reference_problems(export_dir, manifest)
