"""`reszoo list [PATTERN]` and `reszoo info NAME`: browse the model zoo. Its facts are data, read without
TensorFlow: the cached zoo table (`reszoo.catalog`) and the pretrained weights (`reszoo.weights.presets`); only
`info --features` builds a model.

Example:
    $ reszoo list 'resnet5*'
    $ reszoo info resnet50
"""
import click

from export.core.errors import UserError

FLOPS_NOTE = "GMACs = multiply-adds (Conv2D + Dense) at the default input; GFLOPs = 2 x GMACs."
PARAMS_NOTE = "Params = trainable parameters (paper/torchvision convention; BN moving statistics excluded)."


def _millions(count):
    return f"{count / 1e6:.2f}M"


def _giga(count):
    return f"{count / 1e9:.2f}"


def _input(shape):
    return "x".join(str(d) for d in shape)


# column title -> (justification, fact formatter)
LIST_COLUMNS = {
    "Name": ("left", lambda f: f["name"]),
    "Family": ("left", lambda f: f["family"]),
    "Params": ("right", lambda f: _millions(f["trainable_params"])),
    "GMACs": ("right", lambda f: _giga(f["macs"])),
    "GFLOPs": ("right", lambda f: _giga(f["flops"])),
    "Input": ("right", lambda f: _input(f["default_input"])),
}


def _percent(value):
    return "-" if value is None else f"{value:.2f}"


def _crop(preset):
    return "-" if preset.crop_pct is None else f"{preset.crop_pct:.3f}"


# column title -> (justification, preset formatter), for `reszoo list --pretrained`
PRESET_COLUMNS = {
    "Model": ("left", lambda p: p.model),
    "Weights": ("left", lambda p: p.tag),
    "Top-1": ("right", lambda p: _percent(p.top1)),
    "Input": ("right", lambda p: _input(p.input_size)),
    "Crop": ("right", _crop),
    "Interp.": ("left", lambda p: p.interpolation or "-"),
    "License": ("left", lambda p: p.license or "see source"),
    "sha256": ("left", lambda p: (p.sha256 or p.sha256_prefix or "-")[:12]),
}
PRESET_NOTE = ("Top-1: published accuracy (ImageNet-1k val; CIFAR-10 test for cifar:). "
               "create_model(MODEL, weights=WEIGHTS) downloads once (hash checked); offline: reszoo import FILE. "
               "imagenet: keras.applications' own weights, ported.")


def _print_table(title, caption, columns, rows):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left")
    for column, (justify, _) in columns.items():
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(*(format_value(row) for _, format_value in columns.values()))
    Console(width=max(130, Console().width)).print(table)


def _list_presets(pattern):
    import fnmatch

    from reszoo.weights.presets import list_pretrained

    rows = [p for p in list_pretrained() if pattern is None or fnmatch.fnmatch(p.model, pattern)]
    if not rows:
        raise UserError(f"no pretrained weights for models matching {pattern!r}; run `reszoo list --pretrained`")
    _print_table(f"reszoo pretrained weights ({len(rows)})", PRESET_NOTE, PRESET_COLUMNS, rows)


@click.command("list")
@click.argument("pattern", required=False)
@click.option("--pretrained", is_flag=True, help="List the known pretrained checkpoints instead.")
def list_command(pattern, pretrained):
    """List registered models (optionally matching a glob PATTERN such as 'resnet5*') with params and FLOPs."""
    if pretrained:
        return _list_presets(pattern)
    from reszoo.catalog import model_facts, model_names

    names = model_names(pattern)
    if not names:
        raise UserError(f"no model matches {pattern!r}; run `reszoo list` to see all names")
    _print_table(f"reszoo models ({len(names)})", f"{PARAMS_NOTE}\n{FLOPS_NOTE}", LIST_COLUMNS,
                 [model_facts(name) for name in names])


# label -> fact formatter, for `reszoo info`
INFO_LINES = {
    "name": lambda f: f["name"],
    "family": lambda f: f["family"],
    "paper": lambda f: f["paper"],
    "default input": lambda f: _input(f["default_input"]),
    "classes": lambda f: str(f["num_classes"]),
    "params (trainable)": lambda f: f"{f['trainable_params']:,}",
    "params (total, incl. BN statistics)": lambda f: f"{f['params']:,}",
    "multiply-adds (MACs)": lambda f: f"{f['macs']:,} ({_giga(f['macs'])} G)",
    "FLOPs (2 x MACs)": lambda f: f"{f['flops']:,} ({_giga(f['flops'])} G)",
}


# label -> fact formatter, for `reszoo info --features` (the backbone: no head)
BACKBONE_LINES = {key: value for key, value in INFO_LINES.items() if key != "classes"}


def _feature_line(feature):
    size = "x".join("?" if d is None else str(d) for d in feature["size"])
    return f"{feature['name']}: stride {feature['stride']}, {feature['channels']} channels, {size}"


def _backbone_facts(name, output_stride):
    """model_info of the backbone; a builder's refusal (e.g. output_stride on a CIFAR net) is a UserError."""
    from reszoo.models.registry import get_entry, model_info

    get_entry(name)  # unknown names: UnknownModelError with suggestions
    try:
        return model_info(name, features_only=True, output_stride=output_stride)
    except ValueError as error:
        raise UserError(f"{name}: {error}") from None


def _echo_lines(lines, row, width):
    for label, format_fact in lines.items():
        click.echo(f"{label:<{width}}  {format_fact(row)}")


@click.command("info")
@click.argument("name")
@click.option("--features", is_flag=True, help="Describe the backbone (features_only=True): each stage output's "
                                               "stride, channels and size at the default input.")
@click.option("--output-stride", type=click.Choice(["8", "16", "32"]), default=None,
              help="With --features: dilate the last stage(s) to this output stride (ImageNet ResNets).")
def info_command(name, features, output_stride):
    """Show family, paper, parameter counts and FLOPs of the registered model NAME."""
    from reszoo.catalog import model_facts

    if output_stride and not features:
        raise UserError("--output-stride describes a backbone; add --features")
    width = max(map(len, INFO_LINES))
    if not features:
        _echo_lines(INFO_LINES, model_facts(name), width)
        click.echo(f"{'build':<{width}}  reszoo.create_model({name!r})")
        return
    stride = int(output_stride) if output_stride else None
    row = _backbone_facts(name, stride)
    _echo_lines(BACKBONE_LINES, row, width)
    for feature in row["features"]:
        click.echo(f"{'feature':<{width}}  {_feature_line(feature)}")
    options = "features_only=True" + (f", output_stride={stride}" if stride else "")
    click.echo(f"{'build':<{width}}  reszoo.create_model({name!r}, {options})")
