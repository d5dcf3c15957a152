"""export/data: labeled images for calibration, verification and training, and how they are preprocessed.

- `sources`: the loaders (digits, class folders, .npz), the one validator and the one train/held-out split.
- `preprocess`: the preprocessing spec that travels with a model (input size, scale, mean/std) and `normalize`.

Example:
    >>> from export.data.sources import load, split
    >>> train, held_out = split(load("digits", (8, 8)))
"""
