"""Shared building blocks checked against direct numpy computations."""
import keras
import numpy as np
import pytest

from reszoo.models.blocks import max_pool_3x3_s2_exclude_pad


def torch_max_pool_3x3_s2_p1(x):
    """nn.MaxPool2d(3, stride=2, padding=1) by loops: padding is -inf, output floor((n + 2 - 3) / 2) + 1."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    rows, cols = (x.shape[1] - 1) // 2 + 1, (x.shape[2] - 1) // 2 + 1
    return np.array([[[padded[n, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(0, 1)) for j in range(cols)]
                      for i in range(rows)] for n in range(x.shape[0])])


@pytest.mark.parametrize("height,width", [(112, 112), (113, 112), (7, 8), (5, 5), (2, 3)])
def test_max_pool_excluding_padding_equals_torch(height, width):
    inputs = keras.Input((height, width, 3))
    pool = keras.Model(inputs, max_pool_3x3_s2_exclude_pad(inputs, "pool1"))
    x = np.random.default_rng(0).standard_normal((2, height, width, 3)).astype("float32") - 2.0  # mostly < 0
    expected = torch_max_pool_3x3_s2_p1(x)
    np.testing.assert_array_equal(pool(x).numpy(), expected)
    zero_padded = keras.layers.MaxPooling2D(3, 2)(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))).numpy()
    assert not np.array_equal(zero_padded, expected)  # the case this pool exists for


def test_max_pool_excluding_padding_needs_a_fixed_size():
    with pytest.raises(ValueError, match="fixed input height and width"):
        max_pool_3x3_s2_exclude_pad(keras.Input((None, None, 3)), "pool1")
