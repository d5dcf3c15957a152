"""Metadata that travels with a model: preprocessing, labels, builder and training config.

Saved inside the `.keras` zip as the extra entry `reszoo.json` (Keras ignores it when loading), so one file
carries weights, graph and the facts export needs. `save_model` writes atomically (temp file + rename).

Example:
    >>> import keras, tempfile, os
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> save_model(m, path, {"labels": ["a", "b"]})
    >>> read_metadata(path)["labels"]
    ['a', 'b']
"""
import json
import os
import zipfile

from export.core.files import atomic_write
from export.core.errors import UserError

METADATA_ENTRY = "reszoo.json"
SCHEMA_VERSION = 1


def save_model(model, path, metadata=None):
    """Save `model` to `path` (.keras) with `metadata` embedded; atomic, creates parent folders."""
    if not str(path).endswith(".keras"):
        raise UserError(f"model path {path!r} must end in .keras")

    def write(temp):
        model.save(temp, overwrite=True)
        with zipfile.ZipFile(temp, "a") as archive:
            archive.writestr(METADATA_ENTRY, json.dumps({"schema": SCHEMA_VERSION, **(metadata or {})}, indent=2))

    atomic_write(path, write)


def read_metadata(path):
    """The metadata dict embedded in a `.keras` file, or {} when it has none."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path!r} is not a valid .keras file (not a zip archive)")
    with zipfile.ZipFile(path) as archive:
        if METADATA_ENTRY not in archive.namelist():
            return {}
        return json.loads(archive.read(METADATA_ENTRY))


def load_model(path, safe_mode=True):
    """Load a `.keras` model (safe mode by default) and its metadata: returns (model, metadata).

    Example:
        >>> model, meta = load_model("saved_models/resnet20_digits.keras")  # doctest: +SKIP
    """
    import keras

    if not os.path.exists(path):
        raise UserError(f"model file {path!r} does not exist")
    metadata = read_metadata(path)
    try:
        model = keras.saving.load_model(path, safe_mode=safe_mode)
    except Exception as error:  # corrupt archive, unknown layer, bad weights
        raise UserError(f"cannot load model {path!r}: {str(error).splitlines()[0]}") from None
    return model, metadata
