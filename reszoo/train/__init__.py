"""Training with tf.distribute: `fit` (one custom loop for every strategy) and its parts.

Example:
    >>> from reszoo.train import fit
    >>> result = fit("resnet20", "digits", epochs=1, batch_size=64, output_dir=None)  # doctest: +SKIP
"""
from reszoo.train.fit import TrainResult, fit

__all__ = ["fit", "TrainResult"]
