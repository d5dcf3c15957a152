"""Regenerate reszoo/models/zoo_table.json (params and FLOPs of every registered model; takes minutes), the data
`reszoo list` and `reszoo info` print without TensorFlow (`reszoo.catalog`). Run it after adding a model.

Usage:
    .venv/bin/python tools/make_zoo_table.py
"""
import json
import os
import tempfile

from reszoo.catalog import TABLE_PATH
from reszoo.models.zoo_table import build_table


def write_atomically(path, text):
    """Write `text` to `path` via a temp file in the same directory and os.replace."""
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temp, path)


def main():
    table = build_table()
    write_atomically(TABLE_PATH, json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(table)} models to {TABLE_PATH}")


if __name__ == "__main__":
    main()
