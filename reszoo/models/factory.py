"""`create_model`: the registry's builders plus pretrained weight tags (timm's `_factory.py` over `_registry.py`).

The registry is a leaf; this module sits above it and above `reszoo.weights.presets`, which builds through
the registry, so neither imports the other back.

Example:
    >>> from reszoo.models import create_model
    >>> create_model("resnet20", num_classes=10).name
    'resnet20'
"""
from reszoo.models.registry import build_model
from reszoo.weights.presets import create_pretrained, is_pretrained_tag


def create_model(name, /, **kwargs):
    """Build the registered model `name`; keyword arguments go to its builder.

    `weights` is None, a .keras / .weights.h5 file, or a pretrained tag: "imagenet" (keras.applications) or
    one of `reszoo list --pretrained` such as "torchvision:IMAGENET1K_V2" (see `reszoo.weights.presets`).

    Example:
        >>> m = create_model("resnet20", input_shape=(32, 32, 3), num_classes=10)
        >>> m.output_shape
        (None, 10)
    """
    if is_pretrained_tag(kwargs.get("weights")):  # "imagenet" or SOURCE:NAME: download, then port or import
        return create_pretrained(name, **{**kwargs, "name": kwargs.get("name", name)})
    return build_model(name, **kwargs)
