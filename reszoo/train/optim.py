"""Optimizers and learning-rate schedules (with linear warmup) from a small table each.

Weight decay is decoupled (Keras' `weight_decay` argument: w -= lr * wd * w each step; for plain SGD this is
the same update as an L2 penalty of wd/2 * |w|^2) and skips batch-norm parameters and biases.

Example:
    >>> opt = make_optimizer("sgd", lr=0.1, schedule="cosine", total_steps=100, warmup_steps=10)
    >>> round(float(opt.learning_rate), 4)  # step 0 of the warmup
    0.0
"""
import math

import keras

from export.core.errors import UserError

OPTIMIZER_DEFAULTS = {  # name -> (default lr, default weight decay)
    "sgd": (0.1, 5e-4),
    "adamw": (1e-3, 0.05),
    "lamb": (5e-3, 0.02),  # You et al. 2020; ResNet strikes back uses 5e-3..8e-3 at batch 2048 with wd 0.01-0.02
}
SCHEDULES = ("cosine", "step")
STEP_BOUNDARIES = (0.5, 0.75)  # fractions of the run after which the step schedule multiplies lr by 0.1
NO_DECAY_NAMES = ("gamma", "beta", "bias")
SGD_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="reszoo")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `lr` over `warmup_steps`, then cosine or step decay over the remaining steps."""

    def __init__(self, lr, total_steps, warmup_steps=0, kind="cosine"):
        self.lr, self.total_steps, self.warmup_steps, self.kind = float(lr), int(total_steps), int(warmup_steps), kind

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = max(self.warmup_steps, 1)
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = keras.ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        decayed = self.lr * _DECAYS[self.kind](progress)
        warming = self.lr * step / warmup
        return keras.ops.where(step < self.warmup_steps, warming, decayed)

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps, "kind": self.kind}


def _cosine(progress):
    return 0.5 * (1.0 + keras.ops.cos(math.pi * progress))


def _step(progress):
    factor = keras.ops.ones_like(progress)
    for boundary in STEP_BOUNDARIES:
        factor = keras.ops.where(progress >= boundary, factor * 0.1, factor)
    return factor


_DECAYS = {"cosine": _cosine, "step": _step}


def _sgd(schedule, weight_decay, momentum, nesterov):
    return keras.optimizers.SGD(schedule, momentum=SGD_MOMENTUM if momentum is None else momentum, nesterov=nesterov,
                                weight_decay=weight_decay or None)


def _adamw(schedule, weight_decay, momentum, nesterov):
    return keras.optimizers.AdamW(schedule, weight_decay=weight_decay or 0.0)


def _lamb(schedule, weight_decay, momentum, nesterov):
    return keras.optimizers.Lamb(schedule, weight_decay=weight_decay or None)


_OPTIMIZERS = {"sgd": _sgd, "adamw": _adamw, "lamb": _lamb}


def resolve_hyperparameters(optimizer, lr=None, weight_decay=None):
    """(lr, weight_decay) with the optimizer's defaults filled in; UserError for unknown names/bad values."""
    if optimizer not in OPTIMIZER_DEFAULTS:
        raise UserError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZER_DEFAULTS)}")
    default_lr, default_wd = OPTIMIZER_DEFAULTS[optimizer]
    lr = default_lr if lr is None else float(lr)
    weight_decay = default_wd if weight_decay is None else float(weight_decay)
    if lr <= 0 or weight_decay < 0:
        raise UserError(f"need lr > 0 and weight decay >= 0; got lr={lr}, weight_decay={weight_decay}")
    return lr, weight_decay


def make_optimizer(name, *, lr, schedule, total_steps, warmup_steps=0, weight_decay=0.0, mixed_float16=False,
                   momentum=None, nesterov=True):
    """A Keras optimizer with a warmup schedule; wrapped in LossScaleOptimizer for mixed_float16. Weight decay
    skips BN parameters and biases (`NO_DECAY_NAMES`); `momentum`/`nesterov` are SGD's (default 0.9, Nesterov)."""
    if schedule not in SCHEDULES:
        raise UserError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    schedule_fn = WarmupSchedule(lr, total_steps, warmup_steps, schedule)
    optimizer = _OPTIMIZERS[name](schedule_fn, weight_decay, momentum, nesterov)
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_float16 else optimizer
