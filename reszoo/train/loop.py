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
    >>> import numpy as np
    >>> from reszoo.train.logs import SilentLog
    >>> strategy = tf.distribute.get_strategy()  # the default one; `fit` chooses (`reszoo.train.strategies`)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    >>> optimizer = keras.optimizers.SGD(0.1)
    >>> step = make_train_step(strategy, model, optimizer, num_classes=3, global_batch=8)
    >>> batch = (np.ones((8, 4), "float32"), np.zeros(8, "int64"))
    >>> loss_sum, correct, stop = step(batch, tf.constant(0))  # stop flag: 1 after a SIGTERM
    >>> int(stop)
    0
    >>> loop = EpochLoop(step, make_eval_step(model, 3), [batch], lambda epoch, skip: [batch] * (2 - skip),
    ...                  optimizer, SilentLog(), steps_per_epoch=2, batch_size=8)
    >>> history = []
    >>> run_epochs(loop, epochs=3, start_step=0, history=history), [h["epoch"] for h in history]
    (6, [1, 2, 3])
"""
import contextlib
import dataclasses
import math
import re
import time

import keras
import tensorflow as tf


def as_targets(labels, num_classes):
    """Integer labels -> one-hot float32; soft targets (mixup/cutmix, rank 2) pass through."""
    if labels.shape.rank == 2:
        return tf.cast(labels, tf.float32)
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)


def cross_entropy(targets, probabilities, label_smoothing, _threshold):
    """Categorical cross-entropy of softmax outputs against (smoothed) targets."""
    return keras.losses.categorical_crossentropy(targets, probabilities, label_smoothing=label_smoothing)


def binary_cross_entropy(targets, logits, label_smoothing, threshold):
    """timm's BinaryCrossEntropy: smoothed targets (off value s/K, on value 1 - s + s/K), binarized above
    `threshold` when given, sigmoid cross-entropy averaged over classes."""
    classes = tf.cast(tf.shape(targets)[-1], tf.float32)
    targets = targets * (1.0 - label_smoothing) + label_smoothing / classes
    if threshold is not None:
        targets = tf.cast(targets > threshold, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits), axis=-1)


# loss name -> (per-example loss(targets, outputs, label_smoothing, threshold), model outputs logits?)
LOSSES = {"ce": (cross_entropy, False), "bce": (binary_cross_entropy, True)}


def per_example_loss(labels, outputs, num_classes, label_smoothing, loss="ce", threshold=None):
    """The `loss` of float32 `outputs` (probabilities for ce, logits for bce) against labels or soft targets."""
    return LOSSES[loss][0](as_targets(labels, num_classes), tf.cast(outputs, tf.float32), label_smoothing, threshold)


def count_correct(labels, outputs, k=1):
    """Number of top-k hits in a batch (float32); soft targets count their largest class."""
    if labels.shape.rank == 2:
        labels = tf.argmax(labels, axis=-1, output_type=tf.int32)
    hits = tf.math.in_top_k(tf.cast(labels, tf.int32), tf.cast(outputs, tf.float32), k)
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


def agree_on_overflow(gradients):
    """The gradients, all NaN on every replica when any replica's are not finite.

    LossScaleOptimizer decides to skip a step (and lower the loss scale) from each replica's OWN gradients, before
    they are summed: a float16 overflow on one replica only would let the others apply the step (replicas
    diverge, weights turn non-finite) or leave workers waiting on each other's all-reduce. One scalar all-reduce
    makes every replica see the overflow, so all skip alike, as one device with the whole batch would.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients if g is not None])
    overflowed = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32)) > 0
    return [g if g is None else tf.where(overflowed, tf.constant(float("nan"), g.dtype), g) for g in gradients]


def make_train_step(strategy, model, optimizer, *, num_classes, global_batch, label_smoothing=0.0, xla=False,
                    loss="ce", bce_threshold=None, ema=None):
    """A tf.function `step(batch, stop_flag) -> (summed per-example loss, correct count, stop)` over all
    replicas; `stop` is the sum over every replica of `stop_flag` (int32: 1 after a local SIGTERM), so all
    workers learn of a preemption at the same step. `ema` (an `EmaWeights`) is updated after every step."""
    variables = model.trainable_variables
    scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def forward_backward(images, labels):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            losses = per_example_loss(labels, outputs, num_classes, label_smoothing, loss, bce_threshold)
            mean_loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch)
            if model.losses:
                mean_loss += tf.nn.scale_regularization_loss(tf.add_n([tf.cast(l, tf.float32) for l in model.losses]))
            scaled = optimizer.scale_loss(mean_loss) if scales_loss else mean_loss
        gradients = tape.gradient(scaled, variables)
        return gradients, tf.reduce_sum(losses), count_correct(labels, outputs)

    if xla:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    statistics = [v for v in model.non_trainable_variables if "float" in str(v.dtype)]

    def replica_step(images, labels, stop_flag):
        gradients, loss_sum, correct = forward_backward(images, labels)
        if scales_loss and strategy.num_replicas_in_sync > 1:
            gradients = agree_on_overflow(gradients)
        optimizer.apply_gradients(zip(gradients, variables))
        if strategy.num_replicas_in_sync > 1 and statistics:  # a model without BN has none to average
            average_across_replicas(statistics)
        return loss_sum, correct, tf.identity(stop_flag)

    @tf.function
    def step(batch, stop_flag):
        images, labels = batch
        per_replica = strategy.run(replica_step, args=(images, labels, stop_flag))
        if ema is not None:
            ema.update()
        loss_sum, correct, stop = (strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                                   for value in per_replica)
        return loss_sum, correct, stop

    return step


def make_eval_step(model, num_classes, loss="ce"):
    """A tf.function `evaluate(images, labels) -> (summed loss, top-1 hits, top-5 hits)` on one batch."""
    top = min(5, num_classes)

    @tf.function
    def evaluate(images, labels):
        outputs = model(images, training=False)
        return (tf.reduce_sum(per_example_loss(labels, outputs, num_classes, 0.0, loss)),
                count_correct(labels, outputs), count_correct(labels, outputs, top))

    return evaluate


def evaluate(eval_step, dataset):
    """{"val_loss", "val_accuracy", "val_top5"} of `eval_step` over a (non-distributed) dataset."""
    totals = [0.0, 0.0, 0.0]
    count = 0
    for images, labels in dataset:
        for index, value in enumerate(eval_step(images, labels)):
            totals[index] += float(value)
        count += int(labels.shape[0])
    loss_sum, correct, top5 = (total / max(count, 1) for total in totals)
    return {"val_loss": loss_sum, "val_accuracy": correct, "val_top5": top5}


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
    eval_weights: object = contextlib.nullcontext  # () -> context manager: the weights evaluated (EMA)
    stop_flag: object = None  # () -> int32 tensor, 1 after a SIGTERM (None: never)
    on_preempted: object = None  # (step) -> None: checkpoint, then raise Preempted


def input_error(message):
    """The user's line for an input-pipeline failure: a label outside the classes (`streams.checked_label`), else
    an undecodable image; TensorFlow's node prefixes dropped."""
    from reszoo.errors import tensorflow_message
    from reszoo.train.streams import LABEL_RANGE_ERROR

    found = re.search(re.escape(LABEL_RANGE_ERROR) + r"[^\]\n]*?(?=\] \[|\]$|$)", message)
    if found:
        return found.group(0)
    return "an image could not be decoded: " + tensorflow_message(message.splitlines()[0])


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
            raise UserError(f"training data: {input_error(error.message)}") from None
        yield batch, time.perf_counter() - started


def run_epoch(loop, epoch, step):
    """Train `epoch` from global `step` (a resumed epoch skips its done steps), then evaluate: (step, record).

    The record holds images/s (all replicas and per replica) and `input_wait`, the fraction of the epoch's
    training time spent waiting for the next batch (near 0: compute-bound; near 1: input-bound).
    """
    skip = step - epoch * loop.steps_per_epoch
    loss_sum = correct = waited = 0.0
    never = tf.constant(0, tf.int32)  # the stop flag without a preemption watch, made once
    started = time.perf_counter()
    for batch, wait in timed(loop.batches(epoch, skip)):
        waited += wait
        batch_loss, batch_correct, stop = loop.train_step(batch, loop.stop_flag() if loop.stop_flag else never)
        loss_sum += check_finite_loss(batch_loss, step + 1, epoch + 1)
        correct += float(batch_correct)
        step += 1
        seen = (step - epoch * loop.steps_per_epoch - skip) * loop.batch_size
        elapsed = time.perf_counter() - started
        loop.log.step(step, loss=loss_sum / seen, accuracy=correct / seen, images_per_second=seen / elapsed,
                      input_wait=waited / elapsed)
        if loop.checkpoint and loop.checkpoint_every and step % loop.checkpoint_every == 0:
            loop.checkpoint(step)
        if int(stop):
            loop.on_preempted(step)  # checkpoints and raises
    seconds = time.perf_counter() - started
    seen = max((step - epoch * loop.steps_per_epoch - skip) * loop.batch_size, 1)
    with loop.eval_weights():
        validation = evaluate(loop.eval_step, loop.eval_data)
    return step, {"epoch": epoch + 1, "step": step, "loss": loss_sum / seen, "accuracy": correct / seen,
                  **validation, "images_per_second": seen / seconds,
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
