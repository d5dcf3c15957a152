"""The model registry (timm-style): names map to builder functions plus facts about the model.

A leaf: it imports none of the families. The families register themselves when `reszoo.models` imports them,
which `import reszoo` does, so the registry is complete before anything can look a name up.

Pretrained weight tags are the factory's (`reszoo.models.factory`), which sits above this module.

Example:
    >>> import reszoo
    >>> "resnet20" in reszoo.list_models("resnet*")
    True
"""
import dataclasses
import fnmatch
import functools
import math
from typing import Callable

from reszoo.errors import DuplicateModelError, UnknownModelError


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder and the facts `reszoo list`/`info` show."""

    name: str
    builder: Callable
    family: str
    default_input: tuple
    default_classes: int
    paper: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name, *, family, paper, default_input=(224, 224, 3), default_classes=1000):
    """Decorator that registers `builder(**kwargs) -> keras.Model` under `name`.

    Example:
        >>> @register_model("resnet20", family="example", paper="none")  # each name registers once
        ... def tiny_example(**kwargs): ...
        Traceback (most recent call last):
        ...
        reszoo.errors.DuplicateModelError: model 'resnet20' is already registered
    """

    def decorate(builder):
        if name in _REGISTRY:
            raise DuplicateModelError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, family, tuple(default_input), default_classes, paper)
        return builder

    return decorate


def register_rows(rows, builder, *, family, paper, describe):
    """Register one model per `rows` item (name -> row): `create_model(name, **kw)` calls `builder(row, **kw)`.

    `describe(name, row)` gives the docstring. Depth variants stay data, as in timm's registry.

    Example:
        >>> register_rows({"tiny_a": (1, 1)}, lambda row, **kw: row, family="example",
        ...               paper="none", describe=lambda name, row: name)  # doctest: +SKIP
    """
    for name, row in rows.items():
        register_model(name, family=family, paper=paper)(_bind(builder, name, row, describe(name, row)))


def _bind(builder, name, row, doc):
    def build(**kwargs):
        return builder(row, **kwargs)

    build.__name__, build.__doc__ = name, doc
    return build


def get_entry(name) -> ModelEntry:
    """Return the registry entry for `name`, or raise UnknownModelError with suggestions."""
    if name not in _REGISTRY:
        raise UnknownModelError(name, sorted(_REGISTRY))
    return _REGISTRY[name]


def list_models(pattern=None):
    """Sorted registered names, optionally filtered by a glob such as ``"resnet5*"``.

    Example:
        >>> list_models("resnet1*")[:2]
        ['resnet101', 'resnet101v2']
    """
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def build_model(name, /, **kwargs):
    """Build the registered model `name` with its builder (keyword arguments as the builder takes them; `weights`
    a file or None). Pretrained tags ("imagenet", SOURCE:NAME) are `reszoo.models.factory.create_model`'s.

    Example:
        >>> import reszoo.models
        >>> build_model("resnet20", input_shape=(32, 32, 3), num_classes=10).output_shape
        (None, 10)
    """
    kwargs.setdefault("name", name)
    return get_entry(name).builder(**kwargs)


@functools.lru_cache(maxsize=None)
def model_info(name, *, features_only=False, output_stride=None):
    """Facts about a registered model: params, FLOPs at the default input, family, paper.

    FLOPs are counted as 2 x multiply-adds (``flops``); ``macs`` is given too. ``params`` is Keras'
    count_params (includes BatchNormalization moving statistics, as keras.applications reports);
    ``trainable_params`` excludes them (the torchvision / paper convention).

    features_only=True describes the backbone (no head; `output_stride` as the builders take it): its params and
    FLOPs, ``num_classes`` None, and ``features``, one {name, stride, channels, size} per stage output
    (`reszoo.models.features.feature_info`; size at the default input).

    Example:
        >>> info = model_info("resnet20")
        >>> info["family"], info["default_input"]
        ('cifar_resnet', (32, 32, 3))
        >>> [f["stride"] for f in model_info("resnet20", features_only=True)["features"]]
        [1, 2, 4]
    """
    from reszoo.models.flops import count_macs

    entry = get_entry(name)
    backbone = {"features_only": True} if features_only else {"num_classes": entry.default_classes}
    if output_stride is not None:
        backbone["output_stride"] = output_stride
    model = build_model(name, input_shape=entry.default_input, **backbone)
    macs = count_macs(model)
    facts = {
        "name": name,
        "family": entry.family,
        "paper": entry.paper,
        "default_input": entry.default_input,
        "num_classes": entry.default_classes,
        "params": int(model.count_params()),
        "trainable_params": int(sum(math.prod(weight.shape) for weight in model.trainable_weights)),
        "macs": int(macs),
        "flops": int(2 * macs),
    }
    if features_only:
        from reszoo.models.features import feature_info

        facts.update(num_classes=None, output_stride=output_stride, features=feature_info(model))
    return facts
