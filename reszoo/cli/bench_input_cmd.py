"""`reszoo bench-input DATA`: images/s of the training input pipeline alone (no model).

Compare with the img/s of `reszoo train --synthetic` (the step alone): the slower of the two bounds training.

Example:
    $ reszoo bench-input '/data/imagenet/train-*' --label-offset 1 --image-size 224 --batch-size 256
"""
import click


@click.command("bench-input")
@click.argument("data")
@click.option("--image-size", type=int, default=224, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--batches", type=click.IntRange(1), default=50, show_default=True, help="Batches per timed window.")
@click.option("--augment", default="auto", show_default=True, help="As `reszoo train --augment`.")
@click.option("--label-offset", type=int, default=0, show_default=True)
def bench_input_command(data, image_size, batch_size, batches, augment, label_offset):
    """Time the `reszoo train` input pipeline of DATA: decode, augmentation, batching."""
    from export.core.quiet import native_noise_filtered
    from export.data.sources import check_source
    from reszoo.analysis.input_speed import measure_input

    check_source(data)
    with native_noise_filtered():
        result = measure_input(data, image_size, batch_size, batches, augment=augment, label_offset=label_offset)
    windows = ", ".join(f"{rate:.0f}" for rate in result["windows"])
    click.echo(f"input pipeline: {result['images_per_second']:.0f} images/s (median of {windows}; "
               f"{result['batches']} batches of {batch_size} at {image_size}px, augment {result['augment']}, "
               f"{result['images']} images)")
