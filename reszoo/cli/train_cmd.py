"""`reszoo train MODEL`: train a zoo model with tf.distribute (see `reszoo.train.fit`).

Example:
    $ reszoo train resnet20 --data digits --epochs 30 --batch-size 128 --output runs/resnet20
    $ TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        reszoo train resnet50 --data /data/train --strategy multi-worker --batch-size 256 --output /shared/run
"""
import click

from reszoo.train.config import MIXED_PRECISION
from reszoo.train.data import AUGMENTATIONS
from reszoo.train.strategies import STRATEGY_NAMES


# CLI options whose values go to `fit` under another shape (the rest pass through by name)
MODEL_OPTIONS = ("width", "drop_path_rate", "num_classes")


@click.command("train")
@click.argument("model")
@click.option("--recipe", default=None, help="A training recipe (reszoo/train/recipes/*.json: cifar, "
              "nvidia-rn50-90, rsb-a3); options given here override its settings.")
@click.option("--data", default="digits", show_default=True,
              help="'digits', an .npz, a folder of class sub-folders (streamed) or TFRecord files ('DIR/*.tfrecord': "
              "reszoo's image/label or ImageNet's image/encoded + image/class/label; streamed with --val-data or "
              "above 1 GiB); recorded in the saved models for `reszoo export`.")
@click.option("--val-data", default=None, help="Held-out data, any --data kind [the fixed 20 % split of --data; "
              "TFRecord --data over 1 GiB needs it].")
@click.option("--label-offset", type=int, default=0, show_default=True,
              help="Subtracted from TFRecord labels (1 for ImageNet shards, labelled 1-1000).")
@click.option("--synthetic", is_flag=True, help="Train on one fixed random batch: the step speed without input.")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True, help="Global batch (split over replicas).")
@click.option("--lr", type=float, default=None, help="Peak learning rate [sgd 0.1, adamw 0.001, lamb 0.005; a "
              "recipe scales its lr per 256 images to the batch size].")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw", "lamb"]), default="sgd", show_default=True)
@click.option("--momentum", type=float, default=None, help="SGD momentum [0.9].")
@click.option("--nesterov/--no-nesterov", default=True, show_default=True, help="Nesterov momentum (SGD).")
@click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True)
@click.option("--warmup-epochs", type=float, default=0.0, show_default=True)
@click.option("--label-smoothing", type=float, default=0.0, show_default=True)
@click.option("--loss", type=click.Choice(["ce", "bce"]), default="ce", show_default=True,
              help="Softmax cross-entropy, or per-class sigmoid BCE (ResNet strikes back).")
@click.option("--bce-threshold", type=float, default=None, help="Binarize BCE targets above this value.")
@click.option("--mixup", type=float, default=0.0, show_default=True, help="Mixup alpha (0: off).")
@click.option("--cutmix", type=float, default=0.0, show_default=True, help="CutMix alpha (0: off); with mixup, "
              "each batch uses one of the two (50/50).")
@click.option("--ema", type=float, default=None, help="Evaluate and save an exponential moving average of the "
              "weights with this decay (e.g. 0.9998).")
@click.option("--drop-path-rate", type=float, default=None, help="Stochastic depth: the last block's drop rate "
              "(linear from 0 over the blocks).")
@click.option("--weight-decay", type=float, default=None, help="Decoupled weight decay, not on BN and biases "
              "[sgd 5e-4, adamw 0.05, lamb 0.02].")
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default="auto", show_default=True)
@click.option("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)), default="none", show_default=True)
@click.option("--xla", is_flag=True, help="jit_compile the forward/backward pass.")
@click.option("--sync-bn", is_flag=True, help="Batch-norm statistics over the global batch (all replicas), for "
              "small per-replica batches.")
@click.option("--output", "output_dir", default=None, help="Run folder [runs/MODEL-DATA].")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --output.")
@click.option("--force-settings", is_flag=True,
              help="With --resume: accept changed settings (recorded in run.json and the saved models).")
@click.option("--width", type=int, default=None, help="Model width (e.g. 8 for a narrow CIFAR ResNet).")
@click.option("--num-classes", type=int, default=None, help="Classes [from the data: folders, dataset.json beside "
              "shards, labels; else the model's default, 1000 for ImageNet models].")
@click.option("--image-size", type=int, default=None, help="Square input size [the model's default].")
@click.option("--augment", default="auto", show_default=True,
              help=f"auto, {', '.join(AUGMENTATIONS)}.")
@click.option("--steps-per-epoch", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=int, default=None, help="Also checkpoint every N steps.")
@click.option("--keep-checkpoints", type=int, default=3, show_default=True)
@click.option("--deterministic/--no-deterministic", default=True, show_default=True,
              help="Deterministic tf.data element order (off: a little faster input pipeline).")
@click.pass_context
def train_command(ctx, model, recipe, data, **options):
    """Train MODEL on --data; writes checkpoints, TensorBoard logs, history.json, best.keras and final.keras.

    Exit 2 for user errors (e.g. resuming with changed settings), 1 when the loss diverges (NaN/inf), 42 after
    a SIGTERM (checkpoint saved on every worker; the same command continues the run).
    """
    import os
    import sys

    from export.data.sources import check_source

    for source in (data, options["val_data"]):
        if source is not None:
            check_source(source)  # cheap, before TensorFlow loads
    options = fit_options(ctx, recipe, options)
    from reszoo.train import fit
    from reszoo.train.loop import TrainingDiverged
    from reszoo.train.preemption import PREEMPTED_EXIT, Preempted

    options["output_dir"] = options["output_dir"] or os.path.join(
        "runs", f"{model}-{os.path.basename(str(data).rstrip('/')) or 'data'}")
    try:
        result = fit(model, data, **options)
    except TrainingDiverged as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except Preempted as stopped:
        click.echo(str(stopped), err=True)
        sys.exit(PREEMPTED_EXIT)
    if result.final_path:
        click.echo(f"best: {result.best_path}\nfinal: {result.final_path}")


def fit_options(ctx, recipe, options):
    """`fit` keywords from the CLI options: builder options into model_kwargs; with a recipe, only the options
    given on the command line override its settings."""
    from click.core import ParameterSource

    builder = {key: options.pop(key) for key in MODEL_OPTIONS}
    options = {**options, "model_kwargs": {k: v for k, v in builder.items() if v is not None} or None}
    if recipe is None:
        return options
    from reszoo.train.recipe import resolve_options

    given = {key: value for key, value in options.items()
             if key == "model_kwargs" or ctx.get_parameter_source(key) == ParameterSource.COMMANDLINE}
    defaults = {key: value for key, value in options.items() if key not in given}
    return {**defaults, **resolve_options(recipe, given, defaults.get("batch_size"))}
