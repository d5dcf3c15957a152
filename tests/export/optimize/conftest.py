"""Fixtures for the optimization and edge-target tests: digits at 32x32 and one tiny trained CIFAR ResNet."""
import os

import pytest

IMAGE_SIZE = (32, 32)


@pytest.fixture(scope="session")
def digits():
    """(x_train, y_train, x_held_out, y_held_out), preprocessed with the default [0, 1] spec."""
    from export.data import sources as datasets
    from export.data.preprocess import make_spec, normalize

    train, held_out = datasets.split(datasets.load("digits", image_size=IMAGE_SIZE))
    spec = make_spec(IMAGE_SIZE)
    return normalize(train.x, spec), train.y, normalize(held_out.x, spec), held_out.y


@pytest.fixture(scope="session")
def trained_resnet(digits):
    """An 8-layer CIFAR ResNet (width 4, option-A shortcuts) trained to convergence on digits (Keras 3).

    15 epochs: ~93 % held-out accuracy and ~4 near-ties (top-2 within 0.1) after QAT, fewer than the 7 top-1 flips
    the int8 gate allows; the 6 epochs used before left 20 near-ties, which int8 rounding flipped beyond the gate.
    """
    import keras

    from reszoo.models.cifar import CifarResNet

    x, y, _, _ = digits
    keras.utils.set_random_seed(0)
    model = CifarResNet(8, width=4, input_shape=(*IMAGE_SIZE, 3), num_classes=10)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model


@pytest.fixture
def no_legacy_env():
    """Assert a test leaves TF_USE_LEGACY_KERAS exactly as it found it."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    yield
    assert os.environ.get("TF_USE_LEGACY_KERAS") == before

