"""export.core.metadata: the ModelMetadata schema, tolerance of older files, one-line errors, .keras round trip."""
import json
import os
import zipfile

import pytest

from export.core import metadata
from export.core.errors import UserError
from export.core.metadata import ModelMetadata

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEFAULT_MODEL = os.path.join(REPO, "saved_models", "resnet20_digits.keras")


def raw_entry(path):
    """The bytes of the `reszoo.json` entry inside a .keras file."""
    with zipfile.ZipFile(path) as archive:
        return archive.read(metadata.METADATA_ENTRY)


def tiny_model():
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])


def test_shipped_default_metadata_round_trips_byte_identically():
    raw = raw_entry(DEFAULT_MODEL)
    decoded = json.loads(raw)
    meta = ModelMetadata.from_dict(decoded)
    assert meta.to_dict() == decoded and meta.extra == {}
    assert json.dumps(meta.to_dict(), indent=2).encode() == raw
    assert meta.builder["name"] == "resnet20" and meta.labels == [str(d) for d in range(10)]
    assert metadata.read_metadata(DEFAULT_MODEL) == decoded


def test_older_files_keep_unknown_keys_and_read_missing_ones_as_none():
    old = {"schema": 1, "labels": ["a"], "builder": None, "legacy_note": {"x": 1}, "preprocessing": {"channels": 3}}
    meta = ModelMetadata.from_dict(old)
    assert meta.model_name is None and meta.training is None and meta.data is None
    assert meta.extra == {"legacy_note": {"x": 1}}
    assert list(meta.to_dict().items()) == list(old.items())  # same keys, same order, null builder kept
    assert ModelMetadata.from_dict({}).to_dict() == {}


@pytest.mark.parametrize("raw, field", [
    ({"labels": "ab"}, "labels"), ({"labels": ["a", 3]}, "labels"), ({"schema": "1"}, "schema"),
    ({"schema": True}, "schema"), ({"model_name": 5}, "model_name"), ({"preprocessing": [1]}, "preprocessing"),
    ({"builder": "resnet20"}, "builder"), ({"data": 1.0}, "data"), ({"training": []}, "training"),
])
def test_wrong_types_are_one_line_user_errors_naming_the_field(raw, field):
    with pytest.raises(UserError, match=f"field '{field}'") as caught:
        ModelMetadata.from_dict(raw)
    assert "\n" not in str(caught.value)


def test_non_dict_metadata_is_refused():
    for raw in ([1, 2], "x", None):
        with pytest.raises(UserError, match="must be a JSON object"):
            ModelMetadata.from_dict(raw)


def test_keras_save_load_round_trip_with_dict_and_dataclass(tmp_path):
    import numpy as np

    model = tiny_model()
    meta = ModelMetadata(model_name="tiny", labels=["a", "b"], extra={"note": "kept"})
    dict_path, class_path = tmp_path / "dict.keras", tmp_path / "class.keras"
    metadata.save_model(model, str(dict_path), meta.to_dict())
    metadata.save_model(model, str(class_path), meta)
    assert raw_entry(dict_path) == raw_entry(class_path)
    loaded, read = metadata.load_model(str(class_path))
    assert isinstance(read, dict) and list(read) == ["schema", "model_name", "labels", "note"]
    assert read["schema"] == metadata.SCHEMA_VERSION and read["labels"] == ["a", "b"]
    assert np.allclose(loaded.get_layer("dense").kernel.numpy(), model.get_layer("dense").kernel.numpy())
    again = tmp_path / "again.keras"
    metadata.save_model(loaded, str(again), read)  # re-saving what was read keeps the entry byte-identical
    assert raw_entry(again) == raw_entry(class_path)


def test_save_refuses_bad_metadata_before_writing(tmp_path):
    path = tmp_path / "bad.keras"
    with pytest.raises(UserError, match="field 'labels'"):
        metadata.save_model(tiny_model(), str(path), {"labels": 3})
    assert not path.exists()


def test_reading_a_file_with_bad_metadata_names_the_file(tmp_path):
    path = tmp_path / "bad.keras"
    metadata.save_model(tiny_model(), str(path), {})
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    for text, message in [(b'{"labels": 3}', "field 'labels'"), (b"{nope", "not valid JSON")]:
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in {**entries, metadata.METADATA_ENTRY: text}.items():
                archive.writestr(name, data)
        with pytest.raises(UserError, match=message) as caught:
            metadata.read_metadata(str(path))
        assert "bad.keras" in str(caught.value) and "\n" not in str(caught.value)
