"""The one training step every strategy runs (`strategy.run` of a replica step with a GradientTape), and the
epoch loop around it (`run_epochs`: train an epoch, evaluate, keep the best, checkpoint).

Per replica: cross-entropy (with label smoothing) averaged over the GLOBAL batch (`tf.nn.compute_average_loss`)
plus the model's regularization losses scaled by 1/replicas (`tf.nn.scale_regularization_loss`), so the
all-reduced (summed) gradients equal the single-device gradients of the global batch. Mixed float16 scales the
loss through `LossScaleOptimizer` (which unscales and skips non-finite steps). With `xla` the forward and
backward pass is `jit_compile`d; the optimizer update (a cross-replica merge) stays outside XLA. Batch-norm
moving statistics are averaged over replicas after every step, so all replicas hold identical variables.
`check_finite_loss` stops a run whose loss became NaN/inf (TrainingDiverged, naming the step).

Example:
    >>> step = make_train_step(strategy, model, optimizer, num_classes=10, global_batch=64)  # doctest: +SKIP
    >>> loss_sum, correct = step(next(iterator))  # doctest: +SKIP
    >>> final_step = run_epochs(EpochLoop(step, ...), epochs=3, start_step=0, history=[])  # doctest: +SKIP
"""
import dataclasses
import math
import re
import time

import keras
import tensorflow as tf


def per_example_loss(labels, probabilities, num_classes, label_smoothing):
    """Categorical cross-entropy of softmax outputs against (smoothed) one-hot labels, float32."""
    targets = tf.one_hot(labels, num_classes, dtype=tf.float32)
    return keras.losses.categorical_crossentropy(targets, tf.cast(probabilities, tf.float32),
                                                 label_smoothing=label_smoothing)


def count_correct(labels, probabilities):
    """Number of top-1 hits in a batch (float32)."""
    hits = tf.equal(tf.argmax(probabilities, axis=-1, output_type=tf.int32), tf.cast(labels, tf.int32))
    return tf.reduce_sum(tf.cast(hits, tf.float32))


def average_across_replicas(statistics):
    """Set non-trainable float variables (BN moving mean/variance) to their mean over replicas.

    Keras 3 creates them with aggregation NONE, so each replica would keep its own batch statistics; since
    the moving average is linear, averaging every step equals tracking the global batch's statistics.
    """
    context = tf.distribute.get_replica_context()
    means = context.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in statistics])
    for variable, mean in zip(statistics, means):
        variable.assign(mean)


def make_train_step(strategy, model, optimizer, *, num_classes, global_batch, label_smoothing=0.0, xla=False):
    """A tf.function `step(batch) -> (summed per-example loss, correct count)` over all replicas."""
    variables = model.trainable_variables
    scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def forward_backward(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            losses = per_example_loss(labels, probabilities, num_classes, label_smoothing)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n([tf.cast(l, tf.float32) for l in model.losses]))
            scaled = optimizer.scale_loss(loss) if scales_loss else loss
        gradients = tape.gradient(scaled, variables)
        return gradients, tf.reduce_sum(losses), count_correct(labels, probabilities)

    if xla:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    statistics = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]

    def replica_step(images, labels):
        gradients, loss_sum, correct = forward_backward(images, labels)
        optimizer.apply_gradients(zip(gradients, variables))
        if strategy.num_replicas_in_sync > 1:
            average_across_replicas(statistics)
        return loss_sum, correct

    @tf.function
    def step(batch):
        loss_sum, correct = strategy.run(replica_step, args=batch)
        reduce = tf.distribute.ReduceOp.SUM
        return strategy.reduce(reduce, loss_sum, axis=None), strategy.reduce(reduce, correct, axis=None)

    return step


def make_eval_step(model, num_classes):
    """A tf.function `evaluate(images, labels) -> (summed loss, correct)` on one batch, inference mode."""

    @tf.function
    def evaluate(images, labels):
        probabilities = model(images, training=False)
        return (tf.reduce_sum(per_example_loss(labels, probabilities, num_classes, 0.0)),
                count_correct(labels, probabilities))

    return evaluate


def evaluate(eval_step, dataset):
    """(mean loss, accuracy) of `eval_step` over a (non-distributed) dataset."""
    loss_sum = correct = count = 0.0
    for images, labels in dataset:
        batch_loss, batch_correct = eval_step(images, labels)
        loss_sum += float(batch_loss)
        correct += float(batch_correct)
        count += int(labels.shape[0])
    return loss_sum / max(count, 1), correct / max(count, 1)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops, no final model is saved."""


def check_finite_loss(batch_loss, step, epoch):
    """`batch_loss` as a float; TrainingDiverged (naming the step) when it is NaN or infinite.

    Example:
        >>> check_finite_loss(2.5, step=1, epoch=1)
        2.5
    """
    value = float(batch_loss)
    if not math.isfinite(value):
        raise TrainingDiverged(f"training diverged: loss is {value} at step {step} (epoch {epoch}); no final.keras "
                               "saved (try a lower --lr; checkpoints of earlier steps are kept)")
    return value


@dataclasses.dataclass
class EpochLoop:
    """What `run_epochs` drives. `batches(epoch, skip)`: the (distributed) batches of `epoch` after `skip` steps;
    `checkpoint(step)` (or None): save a checkpoint; `on_best(history)` (or None): the newest epoch is the best."""

    train_step: object
    eval_step: object
    eval_data: object
    batches: object
    optimizer: object
    log: object
    steps_per_epoch: int
    batch_size: int
    checkpoint: object = None
    checkpoint_every: int | None = None
    on_best: object = None
    replicas: int = 1


def timed(batches):
    """Yield (batch, seconds spent waiting for it) from `batches`: the time the input pipeline made a step wait.

    A streamed image that cannot be decoded stops the run as a UserError (exit 2) with TensorFlow's first line.
    """
    from export.core.errors import UserError

    iterator = iter(batches)
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.InvalidArgumentError as error:
            reason = re.sub(r"\{\{.*?\}\}\s*", "", error.message.splitlines()[0])  # drop TF's node prefix
            raise UserError(f"training data: an image could not be decoded: {reason}") from None
        yield batch, time.perf_counter() - started


def run_epoch(loop, epoch, step):
    """Train `epoch` from global `step` (a resumed epoch skips its done steps), then evaluate: (step, record).

    The record holds images/s (all replicas and per replica) and `input_wait`, the fraction of the epoch's
    training time spent waiting for the next batch (near 0: compute-bound; near 1: input-bound).
    """
    skip = step - epoch * loop.steps_per_epoch
    loss_sum = correct = waited = 0.0
    started = time.perf_counter()
    for batch, wait in timed(loop.batches(epoch, skip)):
        waited += wait
        batch_loss, batch_correct = loop.train_step(batch)
        loss_sum += check_finite_loss(batch_loss, step + 1, epoch + 1)
        correct += float(batch_correct)
        step += 1
        seen = (step - epoch * loop.steps_per_epoch - skip) * loop.batch_size
        elapsed = time.perf_counter() - started
        loop.log.step(step, loss=loss_sum / seen, accuracy=correct / seen, images_per_second=seen / elapsed,
                      input_wait=waited / elapsed)
        if loop.checkpoint and loop.checkpoint_every and step % loop.checkpoint_every == 0:
            loop.checkpoint(step)
    seconds = time.perf_counter() - started
    seen = max((step - epoch * loop.steps_per_epoch - skip) * loop.batch_size, 1)
    val_loss, val_accuracy = evaluate(loop.eval_step, loop.eval_data)
    return step, {"epoch": epoch + 1, "step": step, "loss": loss_sum / seen, "accuracy": correct / seen,
                  "val_loss": val_loss, "val_accuracy": val_accuracy, "images_per_second": seen / seconds,
                  "images_per_second_per_replica": seen / seconds / loop.replicas,
                  "input_wait": waited / seconds, "lr": float(loop.optimizer.learning_rate)}


def run_epochs(loop, epochs, start_step, history):
    """Train from `start_step` to the end of epoch `epochs`, appending one record per epoch to `history`.

    After each epoch: `on_best` when val_accuracy beat every earlier epoch, the log (history.json), then a
    checkpoint. Returns the last global step. Example: run_epochs(loop, 3, 0, history) -> 3 * steps_per_epoch.
    """
    step = start_step
    best = max((h["val_accuracy"] for h in history), default=-1.0)
    loop.log.start(epochs * loop.steps_per_epoch, start_step)
    try:
        for epoch in range(start_step // loop.steps_per_epoch, epochs):
            step, record = run_epoch(loop, epoch, step)
            history.append(record)
            if record["val_accuracy"] > best and loop.on_best:
                loop.on_best(history)
            best = max(best, record["val_accuracy"])
            loop.log.epoch(epoch + 1, record, history)  # history first: resume cuts it to the checkpointed epochs
            if loop.checkpoint:
                loop.checkpoint(step)
    finally:
        loop.log.close()
    return step
