"""Metadata that travels with a model: preprocessing, labels, builder and training config.

Saved inside the `.keras` zip as the extra entry `reszoo.json` (Keras ignores it when loading), so one file
carries weights, graph and the facts export needs. `save_model` writes atomically (temp file + rename).

The schema is the one dataclass `ModelMetadata` (validation lives only in `ModelMetadata.from_dict`);
`read_metadata`/`load_model` still hand callers a plain dict, built through it. JSON fields, in file order:

- `schema` (int): layout version, `SCHEMA_VERSION` (1); `save_model` fills it in when absent.
- `model_name` (str): the zoo name or the export's model name, e.g. "resnet20".
- `builder` (dict or null): how to rebuild the graph, {"name": builder, "kwargs": {...}}; null for a
  model given as an instance.
- `preprocessing` (dict): the spec of `export.data.preprocess` (input_size, channels, interpolation,
  scale, offset, mean, std).
- `labels` (list of str): class names, index = output unit.
- `data` (dict): where the data came from: source, held_out_fraction, split_seed, train_images,
  held_out_images (export keeps what it found and sets `source`).
- `training` (dict): recipe (strategy, epochs, lr, ...) plus epochs_completed, final/best metrics and
  `saved` ("best" or "final"); absent for models that were not trained here.
- any other key: kept verbatim in `extra` (older or newer files load and re-save unchanged).

A missing field reads as None and is not written back; key order is preserved, so a file's metadata
round-trips byte-identically (`json.dumps(..., indent=2)`).

Example:
    >>> import keras, tempfile, os
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> save_model(m, path, {"labels": ["a", "b"]})
    >>> read_metadata(path)["labels"]
    ['a', 'b']
"""
import dataclasses
import json
import os
import zipfile

from export.core.files import atomic_write
from export.core.errors import UserError

METADATA_ENTRY = "reszoo.json"
SCHEMA_VERSION = 1

# field -> (accepted JSON types, how the error names them); None is always accepted (field absent / null)
_FIELD_TYPES = {"schema": ((int,), "an integer"), "model_name": ((str,), "a string"),
                "builder": ((dict,), "an object"), "preprocessing": ((dict,), "an object"),
                "labels": ((list, tuple), "a list of strings"), "data": ((dict,), "an object"),
                "training": ((dict,), "an object")}


@dataclasses.dataclass
class ModelMetadata:
    """The `reszoo.json` schema (see the module docstring); None = field absent, `extra` = unknown keys.

    `key_order` (not compared) remembers the keys as read, so `to_dict` writes them back in place.

    Example:
        >>> meta = ModelMetadata.from_dict({"schema": 1, "labels": ["0", "1"], "note": "kept"})
        >>> meta.labels, meta.extra
        (['0', '1'], {'note': 'kept'})
        >>> meta.to_dict()
        {'schema': 1, 'labels': ['0', '1'], 'note': 'kept'}
    """

    schema: int | None = None
    model_name: str | None = None
    builder: dict | None = None
    preprocessing: dict | None = None
    labels: list | None = None
    data: dict | None = None
    training: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    key_order: tuple = dataclasses.field(default=(), repr=False, compare=False)  # keys as read, for round trips

    @classmethod
    def from_dict(cls, raw):
        """Validate `raw` (a decoded `reszoo.json`); unknown keys go to `extra`, missing ones are None.

        Example:
            >>> ModelMetadata.from_dict({"labels": "ab"})
            Traceback (most recent call last):
            ...
            export.core.errors.UserError: model metadata field 'labels' must be a list of strings, got str
        """
        if not isinstance(raw, dict):
            raise UserError(f"model metadata must be a JSON object, got {type(raw).__name__}")
        for name, value in raw.items():
            _check_field(name, value)
        known = {name: raw[name] for name in _FIELD_TYPES if name in raw}
        if known.get("labels") is not None:
            known["labels"] = list(known["labels"])
        extra = {name: value for name, value in raw.items() if name not in _FIELD_TYPES}
        return cls(**known, extra=extra, key_order=tuple(raw))

    def to_dict(self):
        """The JSON layout: keys in the order read (new ones after), None fields only if read as null.

        Example:
            >>> ModelMetadata(schema=1, model_name="tiny").to_dict()
            {'schema': 1, 'model_name': 'tiny'}
        """
        values = {name: getattr(self, name) for name in _FIELD_TYPES}
        values = {name: value for name, value in values.items() if value is not None or name in self.key_order}
        values.update(self.extra)
        ordered = [name for name in dict.fromkeys(self.key_order) if name in values]
        return {name: values[name] for name in ordered + [name for name in values if name not in ordered]}


def _check_field(name, value):
    """UserError (one line, naming the field) when a known field has the wrong JSON type."""
    if name not in _FIELD_TYPES or value is None:
        return
    types, wanted = _FIELD_TYPES[name]
    wrong = not isinstance(value, types) or (name == "schema" and isinstance(value, bool))
    if not wrong and name == "labels":
        bad = [label for label in value if not isinstance(label, str)]
        if bad:
            raise UserError(f"model metadata field 'labels' must be a list of strings, got {type(bad[0]).__name__} "
                            f"{bad[0]!r}")
    if wrong:
        raise UserError(f"model metadata field {name!r} must be {wanted}, got {type(value).__name__}")


def as_metadata(metadata):
    """`metadata` (dict, ModelMetadata or None) as a validated ModelMetadata.

    Example:
        >>> as_metadata(None).to_dict()
        {}
    """
    if isinstance(metadata, ModelMetadata):
        return ModelMetadata.from_dict(metadata.to_dict())  # re-validate fields set after construction
    return ModelMetadata.from_dict({} if metadata is None else metadata)


def save_model(model, path, metadata=None):
    """Save `model` to `path` (.keras) with `metadata` (dict or ModelMetadata) embedded; atomic, creates folders.

    The metadata is validated first (UserError naming the field); `schema` comes first, SCHEMA_VERSION if unset.
    """
    if not str(path).endswith(".keras"):
        raise UserError(f"model path {path!r} must end in .keras")
    meta = as_metadata(metadata)
    meta = dataclasses.replace(meta, schema=SCHEMA_VERSION if meta.schema is None else meta.schema,
                               key_order=("schema",) + meta.key_order)
    text = json.dumps(meta.to_dict(), indent=2)

    def write(temp):
        model.save(temp, overwrite=True)
        with zipfile.ZipFile(temp, "a") as archive:
            archive.writestr(METADATA_ENTRY, text)

    atomic_write(path, write)


def read_metadata(path):
    """The metadata dict embedded in a `.keras` file (validated via ModelMetadata), or {} when it has none."""
    return read_model_metadata(path).to_dict()


def read_model_metadata(path):
    """The ModelMetadata embedded in a `.keras` file; empty (all None) when it has none.

    Example:
        >>> read_model_metadata("saved_models/resnet20_digits.keras").model_name
        'resnet20'
    """
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path!r} is not a valid .keras file (not a zip archive)")
    with zipfile.ZipFile(path) as archive:
        if METADATA_ENTRY not in archive.namelist():
            return ModelMetadata()
        raw = archive.read(METADATA_ENTRY)
    try:
        decoded = json.loads(raw)
    except ValueError as error:
        raise UserError(f"{path!r}: {METADATA_ENTRY} is not valid JSON ({error})") from None
    try:
        return ModelMetadata.from_dict(decoded)
    except UserError as error:
        raise UserError(f"{path!r}: {error}") from None


def load_model(path, safe_mode=True):
    """Load a `.keras` model (safe mode by default) and its metadata: returns (model, metadata).

    Example:
        >>> model, meta = load_model("saved_models/resnet20_digits.keras")
        >>> model.output_shape, meta["labels"][:3]
        ((None, 10), ['0', '1', '2'])
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
