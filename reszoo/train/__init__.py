"""Training with tf.distribute: `fit` (one custom loop for every strategy) and its parts.

- `config`: `TrainConfig` (every `fit` keyword, checked once) and the mixed-precision table.
- `data`: the training input pipeline (tf.data, augmentation table, sharding) over `export.data.sources`.
- `fit`: orchestration (strategy -> run -> checkpointer -> epochs -> saved models with metadata).
- `loop`: the distributed train step and the epoch loop (`run_epochs`); `checkpoints`, `logs`, `optim`,
  `strategies`: resumable checkpoints, progress/TensorBoard/history, optimizers/schedules, strategy choice.

Example:
    >>> from reszoo.train import fit
    >>> result = fit("resnet20", "digits", epochs=1, batch_size=64, output_dir=None)  # doctest: +SKIP
"""
from reszoo.train.config import TrainConfig
from reszoo.train.fit import TrainResult, fit

__all__ = ["fit", "TrainConfig", "TrainResult"]
