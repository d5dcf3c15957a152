"""Pretrained presets: known public checkpoints as data (`reszoo.weights.preset_table`), and
`create_model(name, weights=TAG)` for them.

TAG is `"imagenet"` (keras.applications' own ImageNet weights, for the six models keras.applications has)
or `"<source>:<name>"` from the table (`torchvision:IMAGENET1K_V2`, `timm:resnet50.a1_in1k`,
`cifar:akamaster`). A preset file is downloaded once with `keras.utils.get_file` into `~/.keras/reszoo`
(RESZOO_CACHE, a folder, moves it), its sha256 checked against the published one, then imported with `from_torch`.
Offline, the download fails in one line naming the URL and the `reszoo import FILE` route.

Example:
    >>> find_preset("resnet50", "torchvision:IMAGENET1K_V2").top1
    80.858
    >>> model = reszoo.create_model("resnet50", weights="torchvision:IMAGENET1K_V2")  # doctest: +SKIP
"""
import dataclasses
import os
import re

from reszoo.errors import UserError

SOURCE_LAYOUTS = {"torchvision": "torchvision", "timm": "timm", "cifar": "cifar"}  # preset source -> layout
TAG_PATTERN = re.compile(r"(?P<source>[a-z_]+):(?P<name>[\w.\-]+)")
IMAGENET = "imagenet"
CACHE_SUBDIR = "reszoo"
IMAGENET_KWARGS = ("input_shape", "include_top", "pooling", "num_classes", "classifier_activation", "name")
BACKBONE_KWARGS = ("features_only", "out_indices", "output_stride")  # reszoo-only: change no weight


@dataclasses.dataclass(frozen=True)
class Preset:
    """One public checkpoint: where it is, how it was evaluated, under which license (fields of PRESET_ROWS)."""

    tag: str
    model: str
    source: str
    url: str | None
    file_name: str | None
    sha256: str | None
    sha256_prefix: str | None
    top1: float | None
    top5: float | None
    eval_dataset: str | None
    input_size: tuple
    resize_size: int | None
    crop_pct: float | None
    interpolation: str | None
    mean: tuple
    std: tuple
    num_classes: int
    license: str | None
    hub_id: str | None = None
    note: str = ""

    @property
    def layout(self):
        return SOURCE_LAYOUTS[self.source]

    def preprocessing(self):
        """The model-metadata preprocessing spec: pixels / 255, then (x - mean) / std, at input_size."""
        from export.data.preprocess import make_spec

        return make_spec(self.input_size, mean=self.mean, std=self.std, interpolation=self.interpolation or "bilinear",
                         crop_pct=self.crop_pct)


_PRESETS = {}


def register_preset(row):
    """Add a checkpoint (a dict with Preset's fields) to the table; (model, tag) must be new.

    Example:
        >>> register_preset({**PRESET_ROWS[0], "tag": "mine:v1"})  # doctest: +SKIP
    """
    preset = Preset(**{**row, "input_size": tuple(row["input_size"]), "mean": tuple(row["mean"]),
                       "std": tuple(row["std"])})
    key = (preset.model, preset.tag)
    if key in _PRESETS:
        raise ValueError(f"preset {preset.tag!r} for {preset.model!r} is already registered")
    if not TAG_PATTERN.fullmatch(preset.tag) or preset.source not in SOURCE_LAYOUTS:
        raise ValueError(f"preset tag {preset.tag!r} / source {preset.source!r}: expected SOURCE:NAME with SOURCE "
                         f"one of {', '.join(SOURCE_LAYOUTS)}")
    _PRESETS[key] = preset
    return preset


def _load_table():
    from reszoo.weights.preset_table import PRESET_ROWS

    for row in PRESET_ROWS:
        register_preset(row)


def list_presets(model=None):
    """All presets (of `model` when given), in table order."""
    return [p for p in _PRESETS.values() if model is None or p.model == model]


def is_pretrained_tag(weights):
    """True for "imagenet" and SOURCE:NAME tags (anything else is a weights file path).

    Example:
        >>> is_pretrained_tag("torchvision:IMAGENET1K_V1"), is_pretrained_tag("w.weights.h5")
        (True, False)
    """
    return isinstance(weights, str) and (weights == IMAGENET or bool(TAG_PATTERN.fullmatch(weights)))


def find_preset(model, tag):
    """The preset `tag` of `model`; UserError listing the model's tags when there is none."""
    if (model, tag) in _PRESETS:
        return _PRESETS[(model, tag)]
    tags = [p.tag for p in list_presets(model)]
    allowed = ", ".join(tags) if tags else "none (see `reszoo list --pretrained`)"
    raise UserError(f"no pretrained weights {tag!r} for {model!r}; allowed: {allowed}")


def check_hash(path, preset):
    """UserError (and the file removed) when `path` does not have the preset's published sha256 (or prefix)."""
    from export.core.files import remove_created
    from export.manifest import sha256_of

    published = preset.sha256 or preset.sha256_prefix
    if not published:
        return
    actual = sha256_of(path)
    if not actual.startswith(published):
        remove_created(path)
        raise UserError(f"{preset.file_name}: sha256 {actual[:16]}... does not match the published {published} "
                        f"(removed; the download was corrupt or the file changed upstream)")


def download(preset):
    """The local path of the preset's file: from the cache, else downloaded (hash checked)."""
    import keras

    if not preset.url:
        raise UserError(f"{preset.tag} for {preset.model} has no direct URL (hub id {preset.hub_id}); download "
                        f"its weights yourself and run `reszoo import FILE --model {preset.model}`")
    cache_dir = os.environ.get("RESZOO_CACHE")
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)  # keras falls back to /tmp/.keras for a folder it cannot write
    try:
        path = keras.utils.get_file(preset.file_name, preset.url, cache_subdir=CACHE_SUBDIR, cache_dir=cache_dir)
    except Exception as error:  # urllib/HTTP/SSL errors all mean: not downloadable from here
        raise UserError(f"cannot download {preset.url} ({type(error).__name__}); offline? fetch that file elsewhere "
                        f"and run `reszoo import FILE --model {preset.model} --output MODEL.keras`") from None
    check_hash(path, preset)
    return path


def _keras_applications(name, kwargs):
    """weights="imagenet": keras.applications' own download, then the exact port into reszoo's graph."""
    import keras

    from reszoo.weights.keras_weights import KERAS_APPLICATIONS, from_keras_applications

    if name not in KERAS_APPLICATIONS:
        raise UserError(f"weights='imagenet' (keras.applications) exists for {', '.join(KERAS_APPLICATIONS)}, not "
                        f"{name!r}; PyTorch presets: `reszoo list --pretrained`")
    unknown = set(kwargs) - set(IMAGENET_KWARGS) - set(BACKBONE_KWARGS)
    if unknown:
        raise UserError(f"weights='imagenet' takes only {', '.join(IMAGENET_KWARGS + BACKBONE_KWARGS)}; got "
                        f"{', '.join(sorted(unknown))}")
    constructor, _ = KERAS_APPLICATIONS[name]
    backbone = {key: kwargs[key] for key in BACKBONE_KWARGS if key in kwargs}
    include_top = kwargs.get("include_top", True) and not backbone.get("features_only")
    arguments = {"weights": IMAGENET, "include_top": include_top,
                 "input_shape": kwargs.get("input_shape"), "pooling": kwargs.get("pooling"),
                 "classes": kwargs.get("num_classes", 1000)}
    try:
        keras_model = getattr(keras.applications, constructor)(**arguments)
    except ValueError as error:  # keras.applications' own argument checks
        raise UserError(f"weights='imagenet': {error}") from None
    except Exception as error:  # download failures
        raise UserError(f"cannot download keras.applications {constructor} weights ({' '.join(str(error).split())[:200]})"
                        f"; offline? run `reszoo import` on a local file instead") from None
    return from_keras_applications(keras_model, name, **backbone)


def create_pretrained(model, /, weights, **kwargs):
    """`create_model(model, weights=TAG, **kwargs)` for a pretrained TAG (see the module docstring)."""
    if weights == IMAGENET:
        return _keras_applications(model, kwargs)
    from reszoo.weights.torch_import import from_torch

    preset = find_preset(model, weights)
    has_head = kwargs.get("include_top", True) and not kwargs.get("features_only")
    if has_head and kwargs.get("num_classes", preset.num_classes) != preset.num_classes:
        raise UserError(f"{weights} has {preset.num_classes} classes, not num_classes={kwargs['num_classes']}; "
                        f"pass include_top=False to put your own head on the backbone")
    kwargs.setdefault("input_shape", (*preset.input_size, 3))
    return from_torch(download(preset), model, preset.layout, **kwargs)


_load_table()
