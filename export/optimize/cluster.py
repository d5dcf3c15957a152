"""Weight clustering (tfmot `cluster_weights`) of Conv2D/Dense kernels on a tf_keras twin.

Each clustered kernel ends with at most N distinct values (N centroids, k-means++ initialised), which
compresses well (gzip) and is what tfmot users expect before conversion. On an already pruned model the
experimental sparsity-preserving variant keeps the zeros. Layers with fewer kernel weights than N are left
as they are and reported as skipped.

Example:
    >>> import numpy as np, tf_keras
    >>> inputs = tf_keras.Input((8,))
    >>> model = tf_keras.Model(inputs, tf_keras.layers.Dense(4, name="fc")(inputs))
    >>> x, y = np.random.rand(32, 8).astype("float32"), np.arange(32) % 4
    >>> clustered, report = cluster(model, 4, x, y, epochs=1, batch_size=16, learning_rate=1e-4)
    >>> report["unique_values"]["fc"] <= 4
    True
"""
import numpy as np

from export.optimize.finetune import fine_tune, freeze_batch_norm
from export.optimize.tfmot_loader import legacy_keras_env, load_tfmot
from export.optimize.wrapping import clone_with

CLUSTERABLE_CLASSES = ("Conv2D", "Dense")


def is_clusterable(layer, number_of_clusters):
    return layer.__class__.__name__ in CLUSTERABLE_CLASSES and int(np.prod(layer.kernel.shape)) > number_of_clusters


def unique_kernel_values(model, names):
    """{layer name: number of distinct values in its kernel}."""
    return {name: int(np.unique(np.asarray(model.get_layer(name).kernel)).size) for name in names}


def cluster(model, number_of_clusters, x, y, epochs, batch_size, learning_rate, preserve_sparsity=False,
            progress=None, freeze_bn=True):
    """Cluster kernels while fine-tuning (BN statistics frozen unless `freeze_bn` is False); returns
    (stripped model, report)."""
    tfmot = load_tfmot()
    clustering = tfmot.clustering.keras
    with legacy_keras_env():
        from tensorflow_model_optimization.python.core.clustering.keras.experimental import cluster as experimental
    clustered_names, skipped = [], []

    def wrap(original, clone):
        if original.__class__.__name__ not in CLUSTERABLE_CLASSES:
            return None
        if not is_clusterable(original, number_of_clusters):
            skipped.append(original.name)
            return None
        clustered_names.append(original.name)
        return experimental.cluster_weights(
            clone, number_of_clusters=number_of_clusters, preserve_sparsity=preserve_sparsity,
            cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)

    wrapped = clone_with(model, wrap)
    if freeze_bn:
        freeze_batch_norm(wrapped)
    with legacy_keras_env():
        metrics = fine_tune(wrapped, x, y, epochs, batch_size, learning_rate, progress=progress,
                            description="fine-tune (clustering)")
        stripped = clustering.strip_clustering(wrapped)
    report = {"clusters": number_of_clusters, "unique_values": unique_kernel_values(stripped, clustered_names),
              "skipped_layers": skipped, "preserve_sparsity": preserve_sparsity, "fine_tune": metrics}
    return stripped, report
