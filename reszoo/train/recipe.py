"""Training recipes as data: one JSON file per recipe in `reszoo/train/recipes/`, every setting with its source.

A recipe file holds `name`, `title`, `paper`, `published` (top-1 and where it was measured) and `settings`:
{setting: {"value": ..., "source": "..."}}. Settings are `reszoo.train.fit` keywords (epochs, batch_size,
optimizer, momentum, nesterov, weight_decay, schedule, warmup_epochs, label_smoothing, loss, bce_threshold,
mixup, cutmix, ema, augment, image_size, mixed_precision, ...), builder arguments (`MODEL_SETTINGS`: width,
drop_path_rate) and `lr_per_256`, the learning rate per 256 images of global batch (linear scaling rule,
Goyal et al. 2017), resolved against the batch size actually used. Options given on the command line override
the recipe's values (`resolve_options`), and the run records the recipe's name.

Example:
    >>> options = resolve_options("nvidia-rn50-90", {"batch_size": 512})
    >>> options["lr"], options["momentum"]
    (0.512, 0.875)
"""
import json
from pathlib import Path

from export.core.errors import UserError

RECIPE_DIR = Path(__file__).parent / "recipes"
MODEL_SETTINGS = ("width", "drop_path_rate")  # builder arguments, passed as fit's model_kwargs
SCALED_LR = "lr_per_256"


def list_recipes():
    """Names of the shipped recipes: list_recipes() -> ['cifar', 'nvidia-rn50-90', 'rsb-a3']."""
    return sorted(path.stem for path in RECIPE_DIR.glob("*.json"))


def load_recipe(name):
    """The recipe dict of `name`; UserError listing the recipes for an unknown name."""
    path = RECIPE_DIR / f"{name}.json"
    if not path.is_file():
        raise UserError(f"unknown recipe {name!r}; allowed: {', '.join(list_recipes())}")
    return json.loads(path.read_text())


def recipe_values(name):
    """{setting: value} of recipe `name`."""
    return {key: entry["value"] for key, entry in load_recipe(name)["settings"].items()}


def resolve_options(name, given, default_batch_size=128):
    """fit options of recipe `name` with `given` (options set explicitly) taking precedence.

    `lr_per_256` becomes `lr` for the final batch size unless `lr` is given; builder settings go into
    `model_kwargs`.
    """
    values = {**recipe_values(name), **{k: v for k, v in given.items() if k != "model_kwargs"}}
    per_256 = values.pop(SCALED_LR, None)
    if per_256 is not None and values.get("lr") is None:
        values["lr"] = round(per_256 * values.get("batch_size", default_batch_size) / 256, 10)
    model_kwargs = {key: values.pop(key) for key in MODEL_SETTINGS if key in values}
    model_kwargs.update(given.get("model_kwargs") or {})
    return {**values, "model_kwargs": model_kwargs or None, "recipe": name}
