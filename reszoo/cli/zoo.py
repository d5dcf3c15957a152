"""`reszoo list [PATTERN]` and `reszoo info NAME`: browse the model zoo (facts come from the cached zoo table).

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


@click.command("list")
@click.argument("pattern", required=False)
def list_command(pattern):
    """List registered models (optionally matching a glob PATTERN such as 'resnet5*') with params and FLOPs."""
    from rich.console import Console
    from rich.table import Table

    from reszoo.models.registry import list_models
    from reszoo.models.zoo_table import facts

    names = list_models(pattern)
    if not names:
        raise UserError(f"no model matches {pattern!r}; run `reszoo list` to see all names")
    table = Table(title=f"reszoo models ({len(names)})", caption=f"{PARAMS_NOTE}\n{FLOPS_NOTE}",
                  caption_justify="left")
    for title, (justify, _) in LIST_COLUMNS.items():
        table.add_column(title, justify=justify)
    for name in names:
        row = facts(name)
        table.add_row(*(format_fact(row) for _, format_fact in LIST_COLUMNS.values()))
    Console(width=max(100, Console().width)).print(table)


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


@click.command("info")
@click.argument("name")
def info_command(name):
    """Show family, paper, parameter counts and FLOPs of the registered model NAME."""
    from reszoo.models.zoo_table import facts

    row = facts(name)
    width = max(map(len, INFO_LINES))
    for label, format_fact in INFO_LINES.items():
        click.echo(f"{label:<{width}}  {format_fact(row)}")
    click.echo(f"{'build':<{width}}  reszoo.create_model({name!r})")
