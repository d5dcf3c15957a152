"""keras.applications ResNet v1/v2 weights port into reszoo models with equal outputs (random init, no download)."""
import keras
import numpy as np
import pytest

import reszoo
from reszoo.errors import UserError
from reszoo.weights.keras_weights import from_keras_applications, transfer_weights

SIZE = 64


def randomized(model, seed=0):
    """Give every BN non-trivial statistics and every conv bias non-zero values, so a wrong port shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.5, 2.0, c)])
        elif isinstance(layer, keras.layers.Conv2D) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.5, bias.shape)])
    return model


def images(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")


def assert_same_outputs(reference, model):
    x = images()
    expected, got = reference(x, training=False).numpy(), model(x, training=False).numpy()
    assert expected.std() > 0.01  # a non-degenerate comparison
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("constructor,name", [("ResNet50", "resnet50"), ("ResNet50V2", "resnet50v2"),
                                              pytest.param("ResNet101", "resnet101", marks=pytest.mark.slow),
                                              pytest.param("ResNet152", "resnet152", marks=pytest.mark.slow),
                                              pytest.param("ResNet101V2", "resnet101v2", marks=pytest.mark.slow),
                                              pytest.param("ResNet152V2", "resnet152v2", marks=pytest.mark.slow)])
def test_port_features_match(constructor, name):
    reference = randomized(getattr(keras.applications, constructor)(
        weights=None, include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3)))
    model = from_keras_applications(reference, name)
    assert model.name == name
    assert_same_outputs(reference, model)


def test_v1_bias_is_folded_into_bn():
    reference = randomized(keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)))
    model = from_keras_applications(reference, "resnet50")
    conv_bias = reference.get_layer("conv1_conv").bias.numpy()
    np.testing.assert_allclose(model.get_layer("conv1_bn").moving_mean.numpy(),
                               reference.get_layer("conv1_bn").moving_mean.numpy() - conv_bias, rtol=1e-6)
    assert not model.get_layer("conv1_conv").use_bias
    assert model.get_layer("conv3_block1_1_conv").strides == (2, 2)  # keras.applications: stride on the 1x1
    narrow = reszoo.create_model("resnet50", width=32, include_top=False, input_shape=(SIZE, SIZE, 3))
    expected = r"\d+ layer\(s\) have mismatched shapes: conv1_conv \(expected \[\(7, 7, 3, 32\)\], got \[\(7, 7, 3, 64"
    with pytest.raises(UserError, match=expected):
        transfer_weights(reference, narrow)


def test_port_from_weights_file_with_classifier(tmp_path):
    reference = randomized(keras.applications.ResNet50V2(weights=None, classes=7,
                                                         input_shape=(SIZE, SIZE, 3)))
    path = tmp_path / "resnet50v2.weights.h5"
    reference.save_weights(path)
    model = from_keras_applications(path, "resnet50v2", input_shape=(SIZE, SIZE, 3))
    assert model.output_shape == (None, 7)
    assert_same_outputs(reference, model)


def test_wrong_weights_file_names_the_layers(tmp_path):
    path = tmp_path / "v2.weights.h5"
    keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)).save_weights(path)
    with pytest.raises(UserError, match=r"does not fit keras.applications.ResNet50: \d+ layer\(s\) do not fit: conv"):
        from_keras_applications(path, "resnet50", input_shape=(SIZE, SIZE, 3))


def test_wrong_architecture_names_missing_layers():
    reference = keras.applications.ResNet50V2(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(UserError, match=r"missing layers: conv1_bn, .*; unexpected layers: conv2_block1_preact_bn"):
        from_keras_applications(reference, "resnet50")


def test_unsupported_name():
    with pytest.raises(UserError, match="no keras.applications port for 'resnet18'; supported: resnet50"):
        from_keras_applications("whatever.h5", "resnet18")


def save_legacy_h5(model, path):
    """Write weights in the legacy .h5 layout keras.applications ships (Keras 3 saves only .weights.h5)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def test_port_from_legacy_keras_applications_h5(tmp_path):
    reference = randomized(keras.applications.ResNet50(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)))
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    save_legacy_h5(reference, path)
    model = from_keras_applications(path, "resnet50", input_shape=(SIZE, SIZE, 3))
    assert_same_outputs(reference, model)
    with pytest.raises(UserError, match=r"does not match keras.applications.ResNet50V2: missing layers: conv2_block1_"
                                        r"preact_bn.*; unexpected layers: conv1_bn"):
        from_keras_applications(path, "resnet50v2", input_shape=(SIZE, SIZE, 3))
