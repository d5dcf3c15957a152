"""export.data.splits: the one split + preprocessing that export, verify, bench and diagnose feed from."""
import numpy as np

from export.data.preprocess import make_spec, normalize
from export.data.sources import load, split
from export.data.splits import first, native_load_size, prepare, split_for_spec

SPEC = make_spec((16, 16))


def test_split_for_spec_is_the_fixed_split_at_the_spec_size():
    train, held_out = split_for_spec("digits", SPEC)
    expected_train, expected_held_out = split(load("digits", (16, 16), 3))
    assert len(train.x) + len(held_out.x) == 1797 and len(held_out.x) == 360
    np.testing.assert_array_equal(held_out.y, expected_held_out.y)
    np.testing.assert_array_equal(train.x, expected_train.x)


def test_loading_small_and_preparing_resizes_to_the_spec():
    _, small = split_for_spec("digits", SPEC, load_size=(8, 8))
    _, full = split_for_spec("digits", SPEC)
    assert small.x.shape[1:3] == (8, 8)
    np.testing.assert_array_equal(small.y, full.y)  # the same images in the same order
    assert prepare(first(small, 5), SPEC).shape == (5, 16, 16, 3)


def test_native_load_size_prepares_the_same_model_inputs():
    """Export, verify and bench load digits at 8x8 and resize only what they use: the same inputs as loading all
    at the model's size (one resize from the 8x8 original either way); a crop keeps the full-size path."""
    spec = make_spec((64, 64))
    assert native_load_size("digits", spec) == (8, 8)
    assert native_load_size("digits", {**spec, "crop_pct": 0.875}) is None
    assert native_load_size("my_images.npz", spec) is None
    _, small = split_for_spec("digits", spec, load_size=native_load_size("digits", spec))
    _, full = split_for_spec("digits", spec)
    np.testing.assert_array_equal(prepare(first(small, 20), spec), prepare(first(full, 20), spec))


def test_first_and_prepare():
    _, held_out = split_for_spec("digits", SPEC)
    assert len(first(held_out, 7).x) == 7 and first(held_out, None) is held_out
    assert len(first(held_out, 10_000).x) == 360
    x = prepare(held_out, SPEC)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, normalize(held_out.x, SPEC), rtol=1e-6)
