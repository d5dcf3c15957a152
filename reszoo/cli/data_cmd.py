"""`reszoo data shards FOLDER --output DIR`: class-folder images -> TFRecord shards for streaming training.

Example:
    $ reszoo data shards pets/ --output pets_shards --shards 16 --val-fraction 0.1
    $ reszoo train resnet50 --data 'pets_shards/train-*.tfrecord' --val-data 'pets_shards/validation-*.tfrecord'
"""
import click


@click.group("data")
def data_command():
    """Prepare training data."""


@data_command.command("shards")
@click.argument("folder")
@click.option("--output", required=True, help="New folder for the shards and dataset.json.")
@click.option("--shards", type=click.IntRange(1, 100_000), default=8, show_default=True,
              help="Training shards (use at least the number of workers x 4).")
@click.option("--val-fraction", type=float, default=0.0, show_default=True,
              help="Stratified part written as validation-*.tfrecord.")
def shards_command(folder, output, shards, val_fraction):
    """Write FOLDER (one sub-folder of images per class) as TFRecord shards in the ImageNet layout."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from export.core.quiet import native_noise_filtered
    from reszoo.train.shards import write_shards

    with Progress(TextColumn("shards"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("shards", total=None)
        with native_noise_filtered():
            summary = write_shards(folder, output, shards, val_fraction,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
    for split, facts in summary["splits"].items():
        click.echo(f"{split}: {facts['records']} images in {len(facts['files'])} shards "
                   f"({output}/{facts['pattern']})")
    click.echo(f"classes: {len(summary['class_names'])}")
