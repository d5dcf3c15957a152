"""`reszoo data shards`: a class-folder tree -> TFRecord shards in the ImageNet / Model Garden layout.

Each example keeps the image file's bytes as they are (`image/encoded`, no re-encoding), its 0-based class index
(`image/class/label`) and class name (`image/class/text`). Training images are spread round-robin over the shards
after a seeded shuffle, so shards hold mixed classes and differ in size by at most one record; the validation
part (`val_fraction`) is the project's stratified split (`export.data.sources.split_indices`). `dataset.json`
beside the shards records the class names and the record count of every file, which `reszoo train` reads.
The output folder appears only when complete (staged, then renamed in).

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for i in range(20):  # a class-folder tree: pets/cat/*.png, pets/dog/*.png
    ...     path = os.path.join(root, "pets", ("cat", "dog")[i % 2], f"{i}.png")
    ...     os.makedirs(os.path.dirname(path), exist_ok=True)
    ...     Image.new("RGB", (8, 8), (i, i, i)).save(path)
    >>> summary = write_shards(os.path.join(root, "pets"), os.path.join(root, "shards"), shards=4, val_fraction=0.1)
    >>> summary["splits"]["train"]["records"], sorted(os.listdir(os.path.join(root, "shards")))[:2]
    (18, ['dataset.json', 'train-00000-of-00004.tfrecord'])
"""
import json
import os

import numpy as np

from export.core.errors import UserError
from export.core.files import staged_dir, write_json
from export.data.sources import list_image_files, split_indices

DATASET_FILE = "dataset.json"
SHARD_NAME = "{split}-{index:05d}-of-{total:05d}.tfrecord"


def shard_plan(count, shards, seed=0):
    """[indices of shard 0, ...]: a seeded shuffle of range(count) dealt round-robin into `shards` parts.

    Example:
        >>> [len(part) for part in shard_plan(10, 3)]
        [4, 3, 3]
    """
    order = np.random.default_rng(seed).permutation(count)
    return [np.sort(order[index::shards]) for index in range(shards)]


def split_files(labels, val_fraction):
    """{"train": indices, "validation": indices} of the files (no validation part when val_fraction is 0)."""
    if not val_fraction:
        return {"train": np.arange(len(labels))}
    train, validation = split_indices(len(labels), labels, val_fraction)
    return {"train": train, "validation": validation}


def _write_shard(path, items, class_names, advance):
    import tensorflow as tf

    from export.data.tfrecord import imagenet_example

    with tf.io.TFRecordWriter(path) as writer:
        for image_path, label in items:
            with open(image_path, "rb") as handle:
                writer.write(imagenet_example(handle.read(), label, class_names[label]))
            advance()


def write_shards(folder, output, shards=8, val_fraction=0.0, progress=None, seed=0):
    """Write `folder`'s images as shards under `output` (must not exist); returns the dataset.json summary.

    `progress(done, total)` is called after every image. The folder is built as a staged partial and appears
    only when complete (`export.core.files.staged_dir`).
    """
    if os.path.lexists(output):
        raise UserError(f"--output {output!r} exists; choose a new folder")
    if not 0 <= val_fraction < 1:
        raise UserError(f"--val-fraction {val_fraction} must be in [0, 1)")
    with staged_dir(output, inputs={"the image folder": folder}) as work:
        paths, labels, class_names = list_image_files(folder)
        written = iter(range(1, len(paths) + 1))

        def advance():
            done = next(written)
            if progress:
                progress(done, len(paths))

        summary = {"layout": "imagenet", "label_offset": 0, "class_names": class_names,
                   "source": os.path.abspath(folder), "splits": {}}
        for split, indices in split_files(labels, val_fraction).items():
            files = {}
            split_shards = max(1, min(shards, len(indices)))
            for index, members in enumerate(shard_plan(len(indices), split_shards, seed)):
                name = SHARD_NAME.format(split=split, index=index, total=split_shards)
                chosen = indices[members]
                _write_shard(os.path.join(work, name), [(paths[i], int(labels[i])) for i in chosen], class_names,
                             advance)
                files[name] = len(chosen)
            summary["splits"][split] = {"pattern": f"{split}-*.tfrecord", "records": int(len(indices)),
                                        "files": files}
        write_json(os.path.join(work, DATASET_FILE), summary)
    return summary


def read_dataset_file(files):
    """The dataset.json beside TFRecord `files` (written by write_shards), or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(files[0])), DATASET_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{path!r} is not readable JSON; rewrite the shards or remove it") from None
