"""The tf_keras twin is an exact rebuild of any Keras-3 functional/Sequential model (same outputs)."""
import keras
import numpy as np
import pytest

from export.core.errors import UserError
from export.twin import max_twin_error, random_inputs, to_tf_keras

TWIN_ATOL = 1e-6


def assert_exact_twin(model):
    twin = to_tf_keras(model)
    error, _ = max_twin_error(model, twin, random_inputs(model, seed=1))
    assert error <= TWIN_ATOL
    keras_names = {layer.name for layer in model.layers if layer.weights}
    assert keras_names <= {layer.name for layer in twin.layers}
    return twin


@pytest.mark.parametrize("name, kwargs", [
    ("resnet20", {}),                  # option-A shortcuts: 1x1 max-pool subsample + channel zero-pad
    ("resnet20", {"shortcut": "B"}),   # projection shortcuts
    ("highway20", {}),                 # Subtract + Multiply gates
    ("plain20", {}),
])
def test_cifar_family_twins_are_exact(name, kwargs):
    import reszoo

    assert_exact_twin(reszoo.create_model(name, width=4, **kwargs))


def test_files_with_the_old_custom_option_a_layer_still_twin_exactly():
    from reszoo.models.blocks import ZeroPadShortcut

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c")(inputs)
    outputs = ZeroPadShortcut(8, 2, name="pad")(x)
    twin = assert_exact_twin(keras.Model(inputs, outputs))
    assert any(type(layer).__name__ == "ZeroPadShortcut" for layer in twin.layers)


def test_grouped_conv_and_squeeze_excite_twin_is_exact():
    from reszoo.models import resnet
    model = resnet.ResNet((1, 1), "bottleneck", groups=4, base_width=32, width=8, se=True,
                          input_shape=(32, 32, 3), num_classes=10)
    twin = assert_exact_twin(model)
    assert any(getattr(layer, "groups", 1) == 4 for layer in twin.layers)


def test_non_reszoo_models_twins_are_exact():
    inputs = keras.Input((16, 16, 3), name="image")
    a = keras.layers.Conv2D(4, 3, name="a")(inputs)
    b = keras.layers.DepthwiseConv2D(3, name="b")(inputs)
    merged = keras.layers.Concatenate(name="cat")([a, b])
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(merged)
    head = keras.Sequential([keras.Input((7,)), keras.layers.Dense(5, activation="relu", name="hidden"),
                             keras.layers.Dropout(0.2), keras.layers.Dense(3, name="logits")], name="head")
    assert_exact_twin(keras.Model(inputs, [head(pooled), pooled]))
    sequential = keras.Sequential([keras.Input((10, 10, 1)), keras.layers.Rescaling(1 / 255.0),
                                   keras.layers.Conv2D(2, 3, activation="relu"), keras.layers.MaxPooling2D(),
                                   keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    assert_exact_twin(sequential)


@keras.saving.register_keras_serializable(package="twin_test")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2 * x


def test_custom_layer_without_twin_is_a_user_error_naming_it():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Doubler(name="double")(keras.layers.Dense(2)(inputs)))
    with pytest.raises(UserError, match=r"'double'.*twin_test>Doubler"):
        to_tf_keras(model)


def test_raw_keras_ops_in_the_graph_are_a_user_error():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.ops.add(keras.layers.Dense(4)(inputs), 1.0))
    with pytest.raises(UserError, match=r"raw keras.ops call \(keras.src.ops.numpy.Add\)"):
        to_tf_keras(model)


def test_twin_check_catches_a_wrong_custom_twin(monkeypatch):
    import tf_keras

    from export import twin_registry

    class WrongTwin(tf_keras.layers.Layer):
        def call(self, x):
            return 3 * x

    monkeypatch.setitem(twin_registry._TWIN_FACTORIES, "twin_test>Doubler", lambda: WrongTwin)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Doubler(name="double")(inputs))
    with pytest.raises(UserError, match="differs from the model"):
        to_tf_keras(model)
    np.testing.assert_allclose(to_tf_keras(model, check=False)(np.ones((1, 4), "float32")), 3.0)


def test_users_custom_layer_with_its_declared_twin_round_trips_and_twins_exactly(monkeypatch, tmp_path):
    """The custom-layer path stays open for users: registered for safe-mode loading + a declared tf_keras twin."""
    import tf_keras

    from export import twin_registry

    class DoublerTwin(tf_keras.layers.Layer):
        def call(self, x):
            return 2 * x

    monkeypatch.setitem(twin_registry._TWIN_FACTORIES, "twin_test>Doubler", lambda: DoublerTwin)
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(Doubler(name="double")(inputs)))
    path = tmp_path / "custom.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    twin = assert_exact_twin(loaded)
    assert any(isinstance(layer, DoublerTwin) for layer in twin.layers)
