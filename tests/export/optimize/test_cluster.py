"""Weight clustering: every clustered kernel holds at most N distinct values after strip_clustering."""
import numpy as np

from export.optimize import apply


def accuracy(outputs, labels):
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


def test_clustering_limits_unique_values_per_kernel(trained_resnet, digits, no_legacy_env):
    x, y, x_held, y_held = digits
    calls = []
    clustered, report = apply(trained_resnet, {"cluster": 8, "finetune_epochs": 1, "batch_size": 64,
                                               "learning_rate": 1e-4}, (x, y), progress=lambda *a: calls.append(a))
    steps = -(-len(x) // 64)
    assert calls[-1] == ("fine-tune (clustering)", steps, steps) and len(calls) == steps  # one call per batch
    names = report["cluster"]["unique_values"]
    assert set(names) == {layer.name for layer in trained_resnet.layers
                          if layer.__class__.__name__ in ("Conv2D", "Dense")}
    for name in names:
        assert np.unique(np.asarray(clustered.get_layer(name).kernel)).size <= 8, name
    assert report["cluster"]["clusters"] == 8
    assert accuracy(clustered.predict(x_held, verbose=0), y_held) > 0.5  # weights carried over (chance: 0.1)
