"""How fast the training input pipeline alone delivers images (`reszoo bench-input`), to tell an input-bound run
(history.json's `input_wait` near 1) from a compute-bound one.

It builds exactly the pipeline `reszoo train` builds for DATA (streamed for folders and TFRecord shards) and
pulls batches without a model: images/s after `warmup` batches, the median over `repeats` timed windows.

Example:
    >>> result = measure_input("digits", image_size=32, batch_size=64, batches=5, repeats=1)
    >>> result["images_per_second"] > 0, result["augment"], result["images"]
    (True, 'cifar-noflip', 1797)
"""
import statistics
import time


def _pipeline(data, image_size, batch_size, augment, label_offset, num_classes, steps):
    from reszoo.train import batches
    from reszoo.train import data as pipelines
    from reszoo.train.streams import is_streamed, open_stream

    size = (image_size, image_size)
    source = (open_stream(data, label_offset, num_classes) if is_streamed(data, has_val_data=True)
              else pipelines.load_data(data, size))
    chosen = pipelines.resolve_augment(augment, source.source, size)
    spec = pipelines.default_spec(source.source, size)
    dataset = batches.train_batches(source, spec, global_batch=batch_size, epoch=0, seed=0, augment=chosen,
                                      steps=steps)
    return source, chosen, dataset


def measure_input(data, image_size=224, batch_size=256, batches=50, warmup=5, repeats=3, augment="auto",
                  label_offset=0, num_classes=1000):
    """{"images_per_second", "batches", "augment", "images"} of the training pipeline of `data`."""
    source, chosen, dataset = _pipeline(data, image_size, batch_size, augment, label_offset, num_classes,
                                        warmup + batches * repeats)
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates.append(batches * batch_size / (time.perf_counter() - started))
    return {"images_per_second": statistics.median(rates), "windows": rates, "batches": batches,
            "batch_size": batch_size, "augment": chosen, "images": source.count}
