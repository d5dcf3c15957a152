"""export/data: labeled images for calibration, verification and training, and how they are preprocessed.

- `sources`: the one source table (digits, class folders, .npz, TFRecord, in-memory), the one validator and the
  one train/held-out split; `check_source` is its cheap pre-check (no TensorFlow).
- `tfrecord`: TFRecord files of (image, label): reading, and `write_tfrecord`.
- `preprocess`: the preprocessing spec that travels with a model (input size, scale, mean/std) and `normalize`.

Example:
    >>> from export.data.sources import load, split
    >>> train, held_out = split(load("digits", (8, 8)))
"""
