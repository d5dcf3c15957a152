"""Mixup and CutMix on training batches (Zhang et al. 2018; Yun et al. 2019), as timm's `Mixup` in 'batch' mode.

Each batch draws one lam from Beta(alpha, alpha) of the chosen method (CutMix with probability `switch_prob`
when both are on) and mixes every image with the batch reversed: mixup blends pixels, CutMix pastes a box of
area (1 - lam) and corrects lam to the box actually pasted (clipped at the border). Targets become soft:
lam * one_hot(y) + (1 - lam) * one_hot(y reversed); label smoothing is linear, so the loss applies it after.
Seeds are stateless (from the batch's position), so a resumed run mixes the same way.

Example:
    >>> import numpy as np
    >>> x, t = mix_batch(np.ones((4, 8, 8, 3), "float32"), np.arange(4), 4, Mixing(0.2, 0.0), [0, 1])
    >>> t.shape, round(float(t.numpy().sum()), 3)
    (TensorShape([4, 4]), 4.0)
"""
import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Mixing:
    """Mixup / CutMix alphas (0 = off) and the probability of CutMix when both are on (timm: 0.5)."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    switch_prob: float = 0.5

    @property
    def active(self):
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


def sample_beta(alpha, seed):
    """One Beta(alpha, alpha) draw from a stateless seed (ratio of two gammas)."""
    gammas = tf.random.stateless_gamma([2], seed=seed, alpha=alpha)
    return gammas[0] / (gammas[0] + gammas[1])


def cutmix_box(lam, height, width, seed):
    """(top, left, bottom, right) of a box of area (1 - lam) * H * W centred uniformly, clipped to the image."""
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
    cut_w = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
    centre = tf.random.stateless_uniform([2], seed, maxval=tf.int32.max, dtype=tf.int32) % tf.stack([height, width])
    top, left = tf.clip_by_value(centre[0] - cut_h // 2, 0, height), tf.clip_by_value(centre[1] - cut_w // 2, 0, width)
    bottom = tf.clip_by_value(centre[0] + cut_h // 2, 0, height)
    right = tf.clip_by_value(centre[1] + cut_w // 2, 0, width)
    return top, left, bottom, right


def _cutmix(images, lam, seed):
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    top, left, bottom, right = cutmix_box(lam, height, width, seed)
    rows = tf.logical_and(tf.range(height) >= top, tf.range(height) < bottom)
    cols = tf.logical_and(tf.range(width) >= left, tf.range(width) < right)
    inside = tf.logical_and(rows[:, None], cols[None, :])[None, :, :, None]
    area = tf.cast((bottom - top) * (right - left), tf.float32)
    corrected = 1.0 - area / tf.cast(height * width, tf.float32)
    return tf.where(inside, images[::-1], images), corrected


def _mixup(images, lam):
    return lam * images + (1.0 - lam) * images[::-1], lam


def mix_batch(images, labels, num_classes, mixing, seed):
    """(mixed images, soft targets [batch, num_classes]) for one batch; `seed` is a stateless [2] int seed."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    use_cutmix = tf.constant(mixing.cutmix_alpha > 0)
    if mixing.mixup_alpha > 0 and mixing.cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], seed + 7) < mixing.switch_prob
    images = tf.convert_to_tensor(images, tf.float32)
    targets = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)
    cut_lam = sample_beta(max(mixing.cutmix_alpha, 1e-6), seed + 11)
    mix_lam = sample_beta(max(mixing.mixup_alpha, 1e-6), seed + 13)
    mixed, lam = tf.cond(use_cutmix, lambda: _cutmix(images, cut_lam, seed + 17), lambda: _mixup(images, mix_lam))
    return mixed, lam * targets + (1.0 - lam) * targets[::-1]
