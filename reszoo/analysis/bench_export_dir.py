"""What a benchmark reads from an export dir, which it does not trust: integrity (every sha256 as the manifest
says), artifact paths confined to the dir, the hash-pinned Keras reference, and the held-out eval split.

Example:
    >>> import shutil, tempfile
    >>> from export.manifest import artifact_entry, read_manifest, write_json
    >>> folder = tempfile.mkdtemp()  # an export dir with one artifact, the shipped model
    >>> path = shutil.copy("saved_models/resnet20_digits.keras", folder)
    >>> entry = artifact_entry(folder, "resnet20_digits.keras", "keras", "fp32", inputs=[], outputs=[])
    >>> write_json(os.path.join(folder, MANIFEST_FILE), {"artifacts": [entry]})
    >>> manifest = read_manifest(folder)
    >>> check_integrity(folder, manifest)
    >>> reference_model_path(folder, manifest) == os.path.realpath(path)
    True
"""
import os


from export.core.errors import UserError
from export.manifest import MANIFEST_FILE, integrity_problems, sha256_of
from export.manifest import artifact_path as confined_path


class IntegrityError(Exception):
    """The export dir is not what its manifest says (`.problems`: one line each); the CLI exits 1."""

    def __init__(self, export_dir, problems):
        super().__init__(f"{export_dir}: {len(problems)} integrity problem(s)")
        self.problems = problems


def check_integrity(export_dir, manifest):
    """Raise IntegrityError unless every listed artifact (and the reference) hashes as the manifest says.

    Example:
        >>> import tempfile
        >>> check_integrity(tempfile.mkdtemp(), {"artifacts": [{"file": "m.tflite", "sha256": "0" * 64}]})
        Traceback (most recent call last):
        ...
        reszoo.analysis.bench_export_dir.IntegrityError: /...: 1 integrity problem(s)
    """
    problems = integrity_problems(export_dir, manifest)
    if problems:
        raise IntegrityError(export_dir, problems)


def artifact_path(export_dir, artifact):
    """Real path of a manifest artifact, confined to the dir (`export.manifest.artifact_path`); UserError when
    its file is gone.

    Example:
        >>> artifact_path("saved_models", {"file": "resnet20_digits.keras"})
        '/.../saved_models/resnet20_digits.keras'
    """
    path = confined_path(export_dir, artifact["file"])
    if not os.path.exists(path):
        raise UserError(f"artifact {artifact['file']!r} listed in {MANIFEST_FILE} is missing from {export_dir!r}")
    return path


def unchanged_source(source):
    """The source model's path when it still hashes to the manifest's `source_model.sha256`, else None.

    Example:
        >>> unchanged_source({"path": "/no/such.keras", "sha256": "00"}) is None
        True
    """
    path = source.get("path")
    return path if path and os.path.isfile(path) and sha256_of(path) == source.get("sha256") else None


def reference_model_path(export_dir, manifest):
    """The Keras model to time against: the parity reference when it is a `.keras` (found by
    `export.verify.reference_location`, as verify finds it), else the dir's keras artifact or the source model.

    Only hash-pinned files qualify: artifacts and `reference.file` are confined to the dir and checked by
    `check_integrity`, `reference.path` too; the source model only while it matches `source_model.sha256`.

    Example:
        >>> reference_model_path("saved_models", {"artifacts": [{"file": "resnet20_digits.keras", "format": "keras"}]})
        '/.../saved_models/resnet20_digits.keras'
    """
    from export.verify import reference_location

    try:
        path, fmt = reference_location(export_dir, manifest)  # the parity reference, when it is a .keras
        if fmt == "keras":
            return path
    except UserError:
        pass
    keras_artifacts = [artifact_path(export_dir, a) for a in manifest["artifacts"] if a.get("format") == "keras"]
    for candidate in filter(None, keras_artifacts + [unchanged_source(manifest.get("source_model") or {})]):
        if str(candidate).endswith(".keras") and os.path.isfile(candidate):
            return candidate
    raise UserError(f"{export_dir!r} has no keras artifact and its source model is not reachable; "
                    "export with `--format keras` to bench against the reference")


def eval_split(manifest, data, samples):
    """(x, y, description) of the held-out split, preprocessed as the manifest says; y None without labels.

    Example:
        >>> from export.data.preprocess import default_spec_for_input
        >>> x, y, description = eval_split({"preprocessing": default_spec_for_input((32, 32, 3))}, "digits", 40)
        >>> description, x.shape
        ('digits, held-out split (40 images, 32x32)', (40, 32, 32, 3))
    """
    from export.data.preprocess import check_spec
    from export.data.splits import first, native_load_size, prepare, split_for_spec

    try:
        spec = check_spec(manifest.get("preprocessing") or {})
    except ValueError as error:
        raise UserError(f"{MANIFEST_FILE}: {error}") from None
    source = data or (manifest.get("data") or {}).get("source") or "digits"
    size = tuple(spec["input_size"])
    _, held_out = split_for_spec(source, spec, class_names=manifest.get("labels"),
                                 load_size=native_load_size(source, spec))
    picked = first(held_out, samples)
    description = f"{source}, held-out split ({len(picked.x)} images, {size[0]}x{size[1]})"
    return prepare(picked, spec), picked.y, description
