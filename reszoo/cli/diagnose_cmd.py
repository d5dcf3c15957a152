"""`reszoo diagnose MODEL...`: per-block gradient norms, activation statistics and highway gates, at
initialisation and after N SGD steps; writes DIR/diagnose.json and DIR/diagnose.png (atomically). The work is
in `reszoo.analysis.diagnose` (measuring) and `reszoo.analysis.diagnose_report` (files, summary lines).

Example:
    $ reszoo diagnose plain56 resnet56 highway56 --steps 50 --width 8 --output diag/
"""
import click


@click.command("diagnose")
@click.argument("models", nargs=-1, required=True)
@click.option("--data", default="digits", show_default=True, help="'digits', a class-folder dir, or an .npz")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(min=0), help="SGD steps to train")
@click.option("--output", default="diagnose", show_default=True, type=click.Path(file_okay=False),
              help="directory for diagnose.json and diagnose.png")
@click.option("--width", default=None, type=click.IntRange(min=1), help="builder width (CIFAR families: 16)")
@click.option("--image-size", default=None, type=click.IntRange(min=8), help="square input size (default: model's)")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2))
@click.option("--learning-rate", default=0.05, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
def diagnose_command(models, data, steps, output, width, image_size, batch_size, learning_rate, seed):
    """Gradient flow per residual block of MODELS at init and after --steps SGD steps on --data."""
    from reszoo.analysis.diagnose import diagnose
    from reszoo.analysis.diagnose_report import summary_lines, write_outputs

    report = diagnose(list(models), data=data, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
                      seed=seed, width=width, image_size=(image_size, image_size) if image_size else None)
    json_path, png_path = write_outputs(report, output)
    for line in summary_lines(report):
        click.echo(line)
    click.echo(f"wrote {json_path} and {png_path}")
