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
def trained_resnet():
    """An 8-layer CIFAR ResNet (width 4, option-A shortcuts) trained on digits (Keras 3), loaded from
    tests/assets/tiny_w4.keras (`tools/make_test_models.py`: the same weights on every CPU).

    Converged with a cosine schedule: 97.2 % held-out accuracy, 9 near-ties (top-2 within 0.1), TFLite int8 99.2 %
    top-1 agreement and 31 dB output SQNR; trained in each session it depended on the CPU's float rounding (an AVX2
    EPYC's model: 89.7 %, 18 near-ties, 97.2 % int8 agreement, below the 98 % gate).
    """
    import keras

    from tests.helpers import TEST_MODELS

    return keras.saving.load_model(TEST_MODELS["w4"], safe_mode=True)


@pytest.fixture
def no_legacy_env():
    """Assert a test leaves TF_USE_LEGACY_KERAS exactly as it found it."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    yield
    assert os.environ.get("TF_USE_LEGACY_KERAS") == before



HARD_COPIES = 3  # 5391 images: 4312 train / 1079 held out (hard_digits.make)
HARD_EPOCHS = 10


@pytest.fixture(scope="session")
def hard_npz(tmp_path_factory):
    """Path of the harder digits task (`hard_digits`) as an .npz that --data accepts."""
    from tests.export.optimize import hard_digits

    return hard_digits.write_npz(str(tmp_path_factory.mktemp("hard_data") / "hard_digits.npz"), copies=HARD_COPIES)


@pytest.fixture(scope="session")
def hard_model_path(hard_npz, tmp_path_factory):
    """A depth-8 width-8 CIFAR ResNet trained on the train split of `hard_npz` (~85 % held-out, measured: 85.2 %
    on an Intel Xeon AVX-512 VNNI), saved as .keras with its preprocessing/labels/data metadata. ~70 s on 2 cores.

    Not converged to 99 % as on plain digits: pruning and QAT have accuracy to lose, which is what the
    optimization gate and the QAT-vs-PTQ choice are tested on.
    """
    import keras

    from export.core.metadata import save_model
    from export.data import sources as datasets
    from export.data.preprocess import make_spec, normalize
    from reszoo.models.cifar import CifarResNet

    train, _ = datasets.split(datasets.load(hard_npz, IMAGE_SIZE))
    spec = make_spec(IMAGE_SIZE)
    keras.utils.set_random_seed(0)
    model = CifarResNet(8, width=8, input_shape=(*IMAGE_SIZE, 3), num_classes=10)
    steps = HARD_EPOCHS * -(-len(train.x) // 32)
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(normalize(train.x, spec), train.y, epochs=HARD_EPOCHS, batch_size=32, verbose=0)
    path = str(tmp_path_factory.mktemp("hard_model") / "hard.keras")
    save_model(model, path, {"model_name": "hard", "preprocessing": spec, "labels": train.class_names,
                             "data": {"source": hard_npz, "held_out_fraction": 0.2, "split_seed": 0}})
    return path
