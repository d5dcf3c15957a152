"""reszoo.models.resolve: the one MODEL-argument resolver (names, .keras files, SavedModel dirs, export dirs)."""
import pytest

from export.core.errors import UserError
from reszoo.errors import UnknownModelError
from reszoo.models.resolve import KINDS, ResolvedModel, resolve_model


@pytest.fixture
def model_files(tmp_path):
    """A .keras file, a SavedModel dir, an export dir, an empty dir and a dir without marker files."""
    (tmp_path / "tiny.keras").write_bytes(b"not loaded by the resolver")
    for folder, marker in (("sm", "saved_model.pb"), ("exp", "manifest.json"), ("other", "notes.txt")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / marker).write_text("{}")
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_a_registered_name_resolves_with_its_registry_entry():
    resolved = resolve_model("resnet20")
    assert (resolved.kind, resolved.name, resolved.path) == ("name", "resnet20", None)
    assert resolved.entry.default_input == (32, 32, 3) and resolved.entry.default_classes == 10


@pytest.mark.parametrize("argument, kind, name", [("tiny.keras", "keras", "tiny"), ("sm", "saved_model", "sm"),
                                                  ("exp", "export_dir", "exp"), ("exp/", "export_dir", "exp")])
def test_paths_resolve_by_suffix_or_marker_file(model_files, argument, kind, name):
    resolved = resolve_model(model_files / argument)
    assert resolved == ResolvedModel(kind, name, str(model_files / argument))


def test_an_existing_path_wins_over_a_registered_name(model_files, monkeypatch):
    monkeypatch.chdir(model_files)
    (model_files / "resnet20").mkdir()
    (model_files / "resnet20" / "manifest.json").write_text("{}")
    assert resolve_model("resnet20").kind == "export_dir"


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet2O'; did you mean .*resnet20"):
        resolve_model("resnet2O")


@pytest.mark.parametrize("argument, allowed, fragments", [
    ("exp", ("name", "keras"), ["'{root}/exp' is an export dir (with manifest.json)",
                                "allowed here: a registered model name (see `reszoo list`) or a .keras file"]),
    ("sm", ("export_dir",), ["is a SavedModel dir (with saved_model.pb)", "allowed here: an export dir"]),
    ("tiny.keras", ("name",), ["is a .keras file", "allowed here: a registered model name"]),
    ("empty", ("export_dir",), ["'{root}/empty' is an empty dir", "allowed: an export dir (with manifest.json)"]),
    ("other", ("saved_model", "export_dir"), ["is a dir without manifest.json or saved_model.pb",
                                              "allowed: a SavedModel dir (with saved_model.pb) or an export dir"]),
    ("other", ("name", "keras", "saved_model"), ["is a dir without saved_model.pb; allowed: a registered"]),
    ("other", ("keras",), ["'{root}/other' is a dir; allowed: a .keras file"]),
    ("nope", ("name", "export_dir"), ["'{root}/nope' does not exist",
                                      "allowed: a registered model name (see `reszoo list`) or an export dir"]),
    ("other/notes.txt", ("keras",), ["is neither a .keras file nor a dir", "allowed: a .keras file"]),
    ("missing.keras", ("keras",), ["model file '{root}/missing.keras' does not exist"]),
])
def test_refusals_are_one_line_naming_the_value_and_what_is_allowed(model_files, argument, allowed, fragments):
    with pytest.raises(UserError) as caught:
        resolve_model(model_files / argument, allowed=allowed)
    message = str(caught.value)
    assert "\n" not in message and str(model_files / argument) in message
    for fragment in fragments:
        assert fragment.format(root=model_files) in message


def test_a_bare_word_is_a_path_when_names_are_not_allowed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^'resnet20' does not exist; allowed: an export dir"):
        resolve_model("resnet20", allowed=("export_dir",))


def test_allowed_must_name_known_kinds():
    with pytest.raises(ValueError, match="expected some of"):
        resolve_model("resnet20", allowed=("onnx",))
    assert tuple(KINDS) == ("name", "keras", "saved_model", "export_dir")


def test_build_passes_options_to_the_builder_and_refuses_unknown_ones():
    model = resolve_model("resnet20").build(width=4, input_shape=(16, 16, 3), num_classes=7)
    assert model.name == "resnet20" and model.output_shape == (None, 7)
    with pytest.raises(UserError, match=r"model 'resnet20' does not accept these options \(width, depth_x\)"):
        resolve_model("resnet20").build(width=4, depth_x=2)


def test_source_is_the_path_for_files_and_cannot_build_them(model_files):
    resolved = resolve_model(model_files / "tiny.keras")
    assert resolved.source() == str(model_files / "tiny.keras")
    with pytest.raises(UserError, match="is a .keras file, not a registered model name"):
        resolved.build()
