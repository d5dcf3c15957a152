"""Pretrained presets: every known pretrained weight set as data (`reszoo.weights.preset_table`), one list
(`list_pretrained`, what `reszoo list --pretrained` prints), and `create_model(name, weights=TAG)` for them.

TAG is `"imagenet"` (keras.applications' own ImageNet weights, for the six models keras.applications has)
or `"<source>:<name>"` from the table (`torchvision:IMAGENET1K_V2`, `timm:resnet50.a1_in1k`,
`cifar:akamaster`); `find_preset` accepts exactly the (model, tag) pairs of `list_pretrained`. A preset file
is downloaded once with `keras.utils.get_file` into `~/.keras/reszoo` (RESZOO_CACHE, a folder, moves it), its
sha256 checked against the published one, then imported with `from_torch`.
Offline, the download fails in one line naming the URL and the `reszoo import FILE` route.

Example:
    >>> find_preset("resnet50", "torchvision:IMAGENET1K_V2").top1
    80.858
    >>> [p.tag for p in list_pretrained("resnet50v2")]
    ['imagenet']
    >>> model = reszoo.create_model("resnet50", weights="torchvision:IMAGENET1K_V2")  # doctest: +SKIP
"""
import dataclasses
import os
import re

from reszoo.errors import UserError
from reszoo.weights.preset_table import KERAS_APPLICATIONS, PRESET_ROWS

SOURCE_LAYOUTS = {"torchvision": "torchvision", "timm": "timm", "cifar": "cifar"}  # preset source -> layout
TAG_PATTERN = re.compile(r"(?P<source>[a-z_]+):(?P<name>[\w.\-]+)")
IMAGENET = "imagenet"
KERAS_SOURCE = "keras.applications"  # source of the "imagenet" rows
CACHE_SUBDIR = "reszoo"
IMAGENET_KWARGS = ("input_shape", "include_top", "pooling", "num_classes", "classifier_activation", "name")
BACKBONE_KWARGS = ("features_only", "out_indices", "output_stride")  # reszoo-only: change no weight


@dataclasses.dataclass(frozen=True)
class Preset:
    """One public checkpoint: where it is, how it was evaluated, under which license (fields of PRESET_ROWS).

    keras.applications' rows (source KERAS_SOURCE, tag "imagenet") have no url, file or mean/std (None): keras
    downloads them, and they take their constructor module's `preprocess_input` (see KERAS_APPLICATIONS).
    """

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


def _add(preset):
    key = (preset.model, preset.tag)
    if key in _PRESETS:
        raise ValueError(f"preset {preset.tag!r} for {preset.model!r} is already registered")
    _PRESETS[key] = preset
    return preset


def register_preset(row):
    """Add a PyTorch checkpoint (a dict with Preset's fields) to the table; (model, tag) must be new.

    Example:
        >>> register_preset({**PRESET_ROWS[0], "tag": "mine:v1"})  # doctest: +SKIP
    """
    preset = Preset(**{**row, "input_size": tuple(row["input_size"]), "mean": tuple(row["mean"]),
                       "std": tuple(row["std"])})
    if not TAG_PATTERN.fullmatch(preset.tag) or preset.source not in SOURCE_LAYOUTS:
        raise ValueError(f"preset tag {preset.tag!r} / source {preset.source!r}: expected SOURCE:NAME with SOURCE "
                         f"one of {', '.join(SOURCE_LAYOUTS)}")
    return _add(preset)


def keras_applications_preset(model, port):
    """The Preset row of keras.applications' ImageNet weights of `model` (`port`: its KERAS_APPLICATIONS entry)."""
    return Preset(tag=IMAGENET, model=model, source=KERAS_SOURCE, url=None, file_name=None, sha256=None,
                  sha256_prefix=None, top1=port["top1"], top5=port["top5"], eval_dataset="ImageNet-1k val",
                  input_size=(224, 224), resize_size=None, crop_pct=None, interpolation=None, mean=None, std=None,
                  num_classes=1000, license=None,
                  note=f"keras.applications.{port['constructor']}(weights='imagenet'), ported; preprocessing: "
                       f"keras.applications.{port['module']}.preprocess_input")


def _load_table():
    for row in PRESET_ROWS:
        register_preset(row)
    for model, port in KERAS_APPLICATIONS.items():
        _add(keras_applications_preset(model, port))


def list_pretrained(model=None):
    """Every known pretrained weight set (of `model` when given), one Preset each, in table order: the PyTorch
    checkpoints (SOURCE:NAME tags), then keras.applications' own ("imagenet"). `reszoo list --pretrained` prints
    this list and `create_model(model, weights=TAG)` accepts exactly its (model, tag) pairs.

    Example:
        >>> [(p.model, p.source) for p in list_pretrained() if p.tag == "imagenet"][:2]
        [('resnet50', 'keras.applications'), ('resnet101', 'keras.applications')]
    """
    return [p for p in _PRESETS.values() if model is None or p.model == model]


def list_presets(model=None):
    """The PyTorch checkpoint files of `list_pretrained(model)` (SOURCE:NAME tags: downloaded, then imported)."""
    return [p for p in list_pretrained(model) if p.source in SOURCE_LAYOUTS]


def is_pretrained_tag(weights):
    """True for "imagenet" and SOURCE:NAME tags (anything else is a weights file path).

    Example:
        >>> is_pretrained_tag("torchvision:IMAGENET1K_V1"), is_pretrained_tag("w.weights.h5")
        (True, False)
    """
    return isinstance(weights, str) and (weights == IMAGENET or bool(TAG_PATTERN.fullmatch(weights)))


def find_preset(model, tag):
    """The pretrained weights `tag` of `model` (a `list_pretrained` row); UserError listing the model's tags, and
    the models that have `tag`, when there is none.

    Example:
        >>> find_preset("resnet20", "imagenet")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        export.core.errors.UserError: no pretrained weights 'imagenet' for 'resnet20'; allowed: cifar:akamaster; ...
    """
    if (model, tag) in _PRESETS:
        return _PRESETS[(model, tag)]
    tags = [p.tag for p in list_pretrained(model)]
    allowed = ", ".join(tags) if tags else "none (see `reszoo list --pretrained`)"
    others = [p for p in _PRESETS.values() if p.tag == tag]
    elsewhere = (f"; weights={tag!r} ({others[0].source}) exists for {', '.join(p.model for p in others)}"
                 if others else "")
    raise UserError(f"no pretrained weights {tag!r} for {model!r}; allowed: {allowed}{elsewhere}")


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


def _keras_applications(preset, kwargs):
    """weights="imagenet": keras.applications' own download, then the exact port into reszoo's graph."""
    import keras

    from reszoo.weights.keras_weights import from_keras_applications

    unknown = set(kwargs) - set(IMAGENET_KWARGS) - set(BACKBONE_KWARGS)
    if unknown:
        raise UserError(f"weights='imagenet' takes only {', '.join(IMAGENET_KWARGS + BACKBONE_KWARGS)}; got "
                        f"{', '.join(sorted(unknown))}")
    constructor = KERAS_APPLICATIONS[preset.model]["constructor"]
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
    return from_keras_applications(keras_model, preset.model, **backbone)


def _pytorch_file(preset, kwargs):
    """SOURCE:NAME: the checkpoint file downloaded (hash checked), then imported with `from_torch`."""
    from reszoo.weights.torch_import import from_torch

    has_head = kwargs.get("include_top", True) and not kwargs.get("features_only")
    if has_head and kwargs.get("num_classes", preset.num_classes) != preset.num_classes:
        raise UserError(f"{preset.tag} has {preset.num_classes} classes, not num_classes={kwargs['num_classes']}; "
                        f"pass include_top=False to put your own head on the backbone")
    kwargs.setdefault("input_shape", (*preset.input_size, 3))
    return from_torch(download(preset), preset.model, preset.layout, **kwargs)


LOADERS = {KERAS_SOURCE: _keras_applications}  # source -> loader; the other sources are PyTorch files


def create_pretrained(model, /, weights, **kwargs):
    """`create_model(model, weights=TAG, **kwargs)` for a pretrained TAG (see the module docstring)."""
    preset = find_preset(model, weights)  # the one check of which weights exist
    return LOADERS.get(preset.source, _pytorch_file)(preset, kwargs)


_load_table()
