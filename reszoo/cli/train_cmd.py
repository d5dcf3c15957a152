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


@click.command("train")
@click.argument("model")
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
@click.option("--lr", type=float, default=None, help="Peak learning rate [sgd 0.1, adamw 0.001].")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "step"]), default="cosine", show_default=True)
@click.option("--warmup-epochs", type=float, default=0.0, show_default=True)
@click.option("--label-smoothing", type=float, default=0.0, show_default=True)
@click.option("--weight-decay", type=float, default=None, help="Decoupled weight decay [sgd 5e-4, adamw 0.05].")
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default="auto", show_default=True)
@click.option("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)), default="none", show_default=True)
@click.option("--xla", is_flag=True, help="jit_compile the forward/backward pass.")
@click.option("--output", "output_dir", default=None, help="Run folder [runs/MODEL-DATA].")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --output.")
@click.option("--force-settings", is_flag=True,
              help="With --resume: accept changed settings (recorded in run.json and the saved models).")
@click.option("--width", type=int, default=None, help="Model width (e.g. 8 for a narrow CIFAR ResNet).")
@click.option("--image-size", type=int, default=None, help="Square input size [the model's default].")
@click.option("--augment", default="auto", show_default=True,
              help=f"auto, {', '.join(AUGMENTATIONS)}.")
@click.option("--steps-per-epoch", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=int, default=None, help="Also checkpoint every N steps.")
@click.option("--keep-checkpoints", type=int, default=3, show_default=True)
@click.option("--deterministic/--no-deterministic", default=True, show_default=True,
              help="Deterministic tf.data element order (off: a little faster input pipeline).")
def train_command(model, data, val_data, label_offset, synthetic, epochs, batch_size, lr, optimizer, schedule, warmup_epochs, label_smoothing,
                  weight_decay, strategy, mixed_precision, xla, output_dir, resume, width, image_size, augment,
                  steps_per_epoch, seed, checkpoint_every, keep_checkpoints, deterministic, force_settings):
    """Train MODEL on --data; writes checkpoints, TensorBoard logs, history.json, best.keras and final.keras.

    Exit 2 for user errors (e.g. resuming with changed settings), 1 when the loss diverges (NaN/inf).
    """
    import os
    import sys

    from export.data.sources import check_source

    for source in (data, val_data):
        if source is not None:
            check_source(source)  # cheap, before TensorFlow loads
    from reszoo.train import fit
    from reszoo.train.loop import TrainingDiverged

    output_dir = output_dir or os.path.join("runs", f"{model}-{os.path.basename(str(data).rstrip('/')) or 'data'}")
    try:
        result = fit(model, data, epochs=epochs, batch_size=batch_size, strategy=strategy, lr=lr, optimizer=optimizer,
                     schedule=schedule, warmup_epochs=warmup_epochs, label_smoothing=label_smoothing,
                     weight_decay=weight_decay, mixed_precision=mixed_precision,
                     xla=xla, output_dir=output_dir, resume=resume, seed=seed, steps_per_epoch=steps_per_epoch,
                     model_kwargs={"width": width} if width else None, augment=augment, image_size=image_size,
                     checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, deterministic=deterministic,
                     force_settings=force_settings, val_data=val_data, label_offset=label_offset,
                     synthetic=synthetic)
    except TrainingDiverged as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    if result.final_path:
        click.echo(f"best: {result.best_path}\nfinal: {result.final_path}")
