"""The shipped default model loads in safe mode and keeps its held-out accuracy (a real number, >= 97 %)."""
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.join(REPO, "saved_models", "resnet20_digits.keras")
MIN_ACCURACY = 0.97


@pytest.fixture(scope="module")
def default_model():
    from export.core.metadata import load_model

    return load_model(DEFAULT_MODEL, safe_mode=True)


def test_default_model_carries_training_config_preprocessing_and_labels(default_model):
    model, metadata = default_model
    assert metadata["builder"]["name"] == "resnet20"
    assert metadata["preprocessing"]["input_size"] == [32, 32]
    assert metadata["labels"] == [str(d) for d in range(10)]
    assert metadata["data"]["source"] == "digits"
    assert metadata["training"]["epochs"] >= 1
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)


def test_default_model_reaches_97_percent_on_the_held_out_digits(default_model):
    from export.data.sources import load, split
    from export.data.preprocess import normalize

    model, metadata = default_model
    spec = metadata["preprocessing"]
    _, held_out = split(load("digits", spec["input_size"], spec["channels"]))
    scores = model.predict(normalize(held_out.x, spec), batch_size=128, verbose=0)
    accuracy = float(np.mean(scores.argmax(-1) == held_out.y))
    assert len(held_out.y) == 360
    assert accuracy >= MIN_ACCURACY, f"held-out accuracy {accuracy:.4f} < {MIN_ACCURACY}"


def test_default_model_loads_in_safe_mode_in_a_process_that_never_imports_reszoo():
    code = ("import sys, keras; m = keras.saving.load_model(sys.argv[1], safe_mode=True); "
            "assert not [n for n in sys.modules if n.split('.')[0] in ('reszoo', 'export')]; print(m.output_shape)")
    done = subprocess.run([sys.executable, "-c", code, DEFAULT_MODEL], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(None, 10)"


def test_default_model_file_stays_small():
    assert os.path.getsize(DEFAULT_MODEL) < 3_000_000
