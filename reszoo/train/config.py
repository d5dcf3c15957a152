"""`TrainConfig`: every `fit` keyword in one checked dataclass, and the mixed-precision table (no TensorFlow).

`fit(model, data, **options)` builds `TrainConfig(**options)` once; the CLI takes its `--mixed-precision`
choices from `MIXED_PRECISION` here, the one place they are written.

Example:
    >>> config = TrainConfig(epochs=2, batch_size=64, mixed_precision="mixed_bfloat16")
    >>> config.policy, config.strategy
    ('mixed_bfloat16', 'auto')
    >>> TrainConfig(epochs=0, batch_size=64)
    Traceback (most recent call last):
    export.core.errors.UserError: epochs and batch size must be >= 1; got epochs=0, batch_size=64
"""
import dataclasses

from export.core.errors import UserError

# --mixed-precision choice -> Keras global dtype policy (None: float32). `fit` also takes None for "none".
MIXED_PRECISION = {"none": None, "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16"}
LOSS_NAMES = ("ce", "bce")  # reszoo.train.loop.LOSSES


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The `fit` keywords (see `reszoo.train.fit.fit`), checked on construction (UserError for unusable values)."""

    epochs: int
    batch_size: int
    strategy: str = "auto"
    lr: float | None = None
    optimizer: str = "sgd"
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    weight_decay: float | None = None
    mixed_precision: str | None = None
    xla: bool = False
    output_dir: str | None = None
    resume: bool = False
    seed: int = 0
    steps_per_epoch: int | None = None
    model_kwargs: dict | None = None
    augment: str = "auto"
    image_size: object = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 3
    deterministic: bool = True
    verbose: bool = True
    force_settings: bool = False
    val_data: object = None
    label_offset: int = 0
    synthetic: bool = False
    momentum: float | None = None
    nesterov: bool = True
    loss: str = "ce"
    bce_threshold: float | None = None
    mixup: float = 0.0
    cutmix: float = 0.0
    ema: float | None = None
    recipe: str | None = None
    sync_bn: bool = False

    def __post_init__(self):
        for check in CHECKS:
            check(self)

    @property
    def policy(self):
        """The Keras dtype policy of `mixed_precision` (None: float32)."""
        return MIXED_PRECISION["none" if self.mixed_precision is None else self.mixed_precision]


def _check_sizes(config):
    if int(config.epochs) < 1 or int(config.batch_size) < 1:
        raise UserError(f"epochs and batch size must be >= 1; got epochs={config.epochs}, "
                        f"batch_size={config.batch_size}")


def _check_mixed_precision(config):
    if config.mixed_precision is not None and config.mixed_precision not in MIXED_PRECISION:
        raise UserError(f"unknown mixed precision {config.mixed_precision!r}; allowed: {', '.join(MIXED_PRECISION)}")


def _check_regularization(config):
    if not 0.0 <= config.label_smoothing < 1.0 or config.warmup_epochs < 0:
        raise UserError(f"need 0 <= label smoothing < 1 and warmup >= 0; got {config.label_smoothing}, "
                        f"{config.warmup_epochs}")


def _check_recipe_blocks(config):
    if config.loss not in LOSS_NAMES:
        raise UserError(f"unknown loss {config.loss!r}; allowed: {', '.join(LOSS_NAMES)}")
    if config.mixup < 0 or config.cutmix < 0:
        raise UserError(f"mixup and cutmix alphas must be >= 0; got {config.mixup}, {config.cutmix}")
    if config.ema is not None and not 0 < config.ema < 1:
        raise UserError(f"EMA decay must be in (0, 1); got {config.ema}")
    if config.momentum is not None and not 0 <= config.momentum < 1:
        raise UserError(f"momentum must be in [0, 1); got {config.momentum}")


def _check_checkpoints(config):
    if config.checkpoint_every is not None and int(config.checkpoint_every) < 1:
        raise UserError(f"checkpoint interval must be >= 1 step; got {config.checkpoint_every}")


def _check_resume(config):
    if config.force_settings and not config.resume:
        raise UserError("--force-settings only applies with --resume")
    if config.resume and not config.output_dir:
        raise UserError("resume needs an output folder (--output) holding the run's checkpoints")


CHECKS = (_check_sizes, _check_mixed_precision, _check_regularization, _check_recipe_blocks, _check_checkpoints,
          _check_resume)
