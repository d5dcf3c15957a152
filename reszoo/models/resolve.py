"""The one way a command turns its MODEL argument into a model: a registered name, a .keras file, a SavedModel
dir or an export dir. Each command says which kinds it takes; anything else is a one-line UserError naming
the value and what is allowed (unknown names get the registry's did-you-mean).

Example:
    >>> resolve_model("resnet20").entry.default_input
    (32, 32, 3)
    >>> resolve_model("exports/nope", allowed=("export_dir",))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    export.core.errors.UserError: 'exports/nope' does not exist; allowed: an export dir (with manifest.json)
"""
import dataclasses
import os

from export.core.errors import UserError

# kind -> how messages name it; the order is the order in "allowed: ..." lists
KINDS = {
    "name": "a registered model name (see `reszoo list`)",
    "keras": "a .keras file",
    "saved_model": "a SavedModel dir (with saved_model.pb)",
    "export_dir": "an export dir (with manifest.json)",
}
DIR_MARKERS = (("export_dir", "manifest.json"), ("saved_model", "saved_model.pb"))  # first match wins
KERAS_SUFFIX = ".keras"


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A MODEL argument, classified: `kind` (a KINDS key), `name` (registered name, file stem or dir name),
    `path` (None for a name) and `entry` (the registry's ModelEntry -- builder, default input and classes --
    for a name, else None).

    Example:
        >>> resolve_model("resnet20").build(width=4, num_classes=10).output_shape
        (None, 10)
    """

    kind: str
    name: str
    path: str | None = None
    entry: object = None

    def build(self, **kwargs):
        """The registered model built with `kwargs` (UserError when its builder rejects one of them)."""
        from reszoo.models.factory import create_model

        if self.kind != "name":
            raise UserError(f"{self.path!r} is {KINDS[self.kind]}, not a registered model name; it cannot be built")
        try:
            return create_model(self.name, **kwargs)
        except TypeError as error:
            raise UserError(f"model {self.name!r} does not accept these options ({', '.join(kwargs)}): "
                            f"{error}") from None

    def source(self):
        """What `export.export_model` takes: the built model (defaults) for a name, else the path."""
        return self.build() if self.kind == "name" else self.path


def resolve_model(argument, allowed=tuple(KINDS)):
    """Classify `argument` as one of the `allowed` kinds; UserError (one line) otherwise.

    A path-like argument (ends in .keras, contains a separator, or exists) is a file or dir; anything else is
    a registry name (UnknownModelError with close matches when it is not registered).

    Example:
        >>> resolved = resolve_model("resnet20", allowed=("name", "keras"))
        >>> resolved.kind, resolved.name, resolved.path
        ('name', 'resnet20', None)
        >>> resolve_model("resnet2O")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        reszoo.errors.UnknownModelError: unknown model 'resnet2O'; did you mean resnet20?
    """
    if not allowed or not set(allowed) <= set(KINDS):
        raise ValueError(f"allowed kinds {allowed!r}: expected some of {', '.join(KINDS)}")
    argument = os.fspath(argument)
    if looks_like_path(argument) or "name" not in allowed:
        return resolve_path(argument, allowed)
    return resolve_name(argument)


def looks_like_path(argument):
    """True for a .keras name, anything with a path separator, or an existing file or dir.

    Example:
        >>> looks_like_path("resnet20"), looks_like_path("m.keras"), looks_like_path("exports/demo")
        (False, True, True)
    """
    separators = filter(None, (os.sep, os.altsep))
    return argument.endswith(KERAS_SUFFIX) or any(s in argument for s in separators) or os.path.exists(argument)


def resolve_name(argument):
    """A ResolvedModel for a registry name (UnknownModelError with suggestions when it is not registered)."""
    from reszoo.models.registry import get_entry  # imports Keras: only for names

    entry = get_entry(argument)
    return ResolvedModel("name", entry.name, None, entry)


def resolve_path(argument, allowed):
    """A ResolvedModel for a .keras file, SavedModel dir or export dir, checked against `allowed`."""
    kind = path_kind(argument)
    if kind is None:
        raise UserError(f"{argument!r} {path_problem(argument, allowed)}; allowed: {allowed_phrase(allowed)}")
    if kind not in allowed:
        raise UserError(f"{argument!r} is {KINDS[kind]}; allowed here: {allowed_phrase(allowed)}")
    if not os.path.exists(argument):
        raise UserError(f"model file {argument!r} does not exist")
    name = os.path.basename(os.path.normpath(argument))
    return ResolvedModel(kind, name[: -len(KERAS_SUFFIX)] if kind == "keras" else name, argument)


def path_kind(path):
    """'keras' for a *.keras path (existing or not), 'export_dir'/'saved_model' by the marker file a dir holds."""
    if path.endswith(KERAS_SUFFIX):
        return "keras"
    return next((kind for kind, marker in DIR_MARKERS if os.path.isfile(os.path.join(path, marker))), None)


def path_problem(path, allowed):
    """Why `path` is no model: missing, an empty dir, a dir without the allowed kinds' marker files, or a file."""
    if not os.path.exists(path):
        return "does not exist"
    if not os.path.isdir(path):
        return "is neither a .keras file nor a dir"
    if not os.listdir(path):
        return "is an empty dir"
    markers = [marker for kind, marker in DIR_MARKERS if kind in allowed]
    return f"is a dir without {' or '.join(markers)}" if markers else "is a dir"


def allowed_phrase(allowed):
    """The allowed kinds in KINDS order, for messages.

    Example:
        >>> allowed_phrase(("export_dir", "keras"))
        'a .keras file or an export dir (with manifest.json)'
    """
    phrases = [KINDS[kind] for kind in KINDS if kind in allowed]
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} or {phrases[-1]}"
