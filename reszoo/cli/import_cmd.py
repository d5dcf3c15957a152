"""`reszoo import SOURCE --model NAME --output model.keras`: PyTorch weights (torchvision, timm, classic CIFAR)
into a reszoo .keras file that carries its preprocessing and labels, ready for `reszoo export`. No torch needed.

Example:
    $ reszoo import resnet50-11ad3fa6.pth --model resnet50 --output resnet50_tv2.keras
    $ reszoo import resnet20-12fca82f.th --model resnet20 --check --output resnet20.keras
    $ reszoo export resnet20.keras --format tflite --precision int8 --data cifar_test/
"""
import os

import click

from export.core.errors import UserError

# layout -> evaluation preprocessing when SOURCE is no known preset (torchvision's and the CIFAR code's defaults)
LAYOUT_PREPROCESSING = {
    "torchvision": {"input_size": (224, 224), "crop_pct": 0.875, "interpolation": "bilinear"},
    "timm": {"input_size": (224, 224), "crop_pct": 0.875, "interpolation": "bicubic"},
    "cifar": {"input_size": (32, 32), "crop_pct": None, "interpolation": "bilinear"},
}


def _numbers(text, count, option, kind=float):
    """'0.5,0.5,0.5' -> (0.5, 0.5, 0.5); UserError naming the option when it is not `count` numbers."""
    try:
        values = tuple(kind(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise UserError(f"{option} {text!r}: expected {count} comma-separated numbers")
    return values


def _labels(path, classes):
    if path is None:
        return [str(i) for i in range(classes)]
    with open(path, encoding="utf-8") as file:
        labels = [line.strip() for line in file if line.strip()]
    if len(labels) != classes:
        raise UserError(f"--labels {path!r} has {len(labels)} names; the model has {classes} classes")
    return labels


def _preset_for(source, model):
    """The preset whose file name SOURCE has (its published preprocessing), else None."""
    from reszoo.weights.presets import list_presets

    return next((p for p in list_presets(model) if p.file_name == os.path.basename(source)), None)


def _spec(preset, layout, input_size, mean, std, crop_pct):
    """The preprocessing spec: the options given, else the preset's, else the layout's defaults."""
    from export.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, make_spec

    base = LAYOUT_PREPROCESSING[layout]
    if preset is not None:
        base = {"input_size": preset.input_size, "crop_pct": preset.crop_pct, "mean": preset.mean, "std": preset.std,
                "interpolation": preset.interpolation or "bilinear"}
    return make_spec(input_size or base["input_size"], mean=mean or base.get("mean", IMAGENET_MEAN),
                     std=std or base.get("std", IMAGENET_STD), interpolation=base["interpolation"],
                     crop_pct=base["crop_pct"] if crop_pct is None else crop_pct)


@click.command("import")
@click.argument("source")
@click.option("--model", "model_name", required=True, help="Registered model name (see `reszoo list`).")
@click.option("--layout", type=click.Choice(["auto", "torchvision", "timm", "cifar"]), default="auto",
              show_default=True, help="State-dict layout; auto tells it from the keys.")
@click.option("--num-classes", type=int, default=None, help="[from the classifier's shape]")
@click.option("--input-size", default=None, help="H,W [the preset's, else 224,224 / 32,32 for cifar]")
@click.option("--mean", default=None, help="R,G,B on pixels scaled to [0, 1] (torchvision convention) [ImageNet]")
@click.option("--std", default=None, help="R,G,B [ImageNet]")
@click.option("--crop-pct", type=float, default=None, help="Center-crop fraction at evaluation (timm) [preset's]")
@click.option("--labels", "labels_path", default=None, help="Text file, one class name per line [0..N-1].")
@click.option("--ema", is_flag=True, help="Take the EMA weights of a training checkpoint.")
@click.option("--check", is_flag=True, help="Compare the model with a numpy forward pass in PyTorch semantics "
              "(architecture read from the keys alone); exit 1 and write nothing when they differ.")
@click.option("--output", required=True, help="The .keras file to write.")
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
def import_command(source, model_name, layout, num_classes, input_size, mean, std, crop_pct, labels_path, ema,
                   check, output, force):
    """Import PyTorch weights SOURCE (.pth/.pt/.th/.tar, .safetensors, .npz) into reszoo model --model."""
    from reszoo.models.registry import get_entry
    from reszoo.weights.state_dict import check_weights_file

    entry = get_entry(model_name)
    if not output.endswith(".keras"):
        raise UserError(f"--output {output!r} must end in .keras")
    if os.path.exists(output) and not force:
        raise UserError(f"--output {output!r} exists; pass --force to replace it")
    check_weights_file(source)
    numbers = {"input_size": _numbers(input_size, 2, "--input-size", int) if input_size else None,
               "mean": _numbers(mean, 3, "--mean") if mean else None,
               "std": _numbers(std, 3, "--std") if std else None}
    _run(source, entry, layout, num_classes, crop_pct, labels_path, ema, check, output, **numbers)


def _run(source, entry, layout, num_classes, crop_pct, labels_path, ema, check, output, input_size, mean, std):
    from export.core.metadata import save_model
    from export.core.quiet import native_noise_filtered
    from reszoo.weights import check_import, import_torch
    from reszoo.weights.layouts import choose_layout
    from reszoo.weights.state_dict import load_state_dict

    state = load_state_dict(source, prefer_ema=ema)
    chosen = choose_layout(state, layout)
    spec = _spec(_preset_for(source, entry.name), chosen.name, input_size, mean, std, crop_pct)
    kwargs = {"input_shape": (*spec["input_size"], 3)}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    with native_noise_filtered():
        model, report = import_torch(state, entry.name, chosen.name, **kwargs)
    labels = _labels(labels_path, model.output_shape[-1])
    click.echo(f"layout: {report.layout}\ntensors mapped: {report.tensors} ({report.parameters:,} numbers)"
               + (f"\ndropped: {', '.join(report.dropped)}" if report.dropped else ""))
    if check:
        with native_noise_filtered():
            result = check_import(model, state, report.layout)
        click.echo(result.summary())
        if not result.passed:
            raise SystemExit(1)
    metadata = {"model_name": entry.name, "builder": {"name": entry.name, "kwargs": report.builder_kwargs},
                "preprocessing": spec, "labels": labels,
                "imported_from": {"file": os.path.basename(source), "layout": report.layout, "ema": ema}}
    save_model(model, output, metadata)
    click.echo(f"wrote {output}")
