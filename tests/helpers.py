"""Assertions shared by the CLI and safety tests: one-line user errors, file snapshots, leftovers."""
import os

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
# the trained tiny test models (tools/make_test_models.py), the same weights on every CPU
TEST_MODELS = {"w4": os.path.join(ASSETS, "tiny_w4.keras"), "w8": os.path.join(ASSETS, "tiny_w8.keras")}


def tree_sha256(root):
    """{relative path: sha256} of every file under `root` (symlinks not followed): a before/after snapshot."""
    import hashlib

    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


def assert_one_line_user_error(result, *fragments):
    """Exit 2, no traceback, exactly one `error:` line on stderr (nothing else but blank lines), naming `fragments`."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def partial_leftovers(folder):
    """Names under `folder` that a run leaves only when it did not clean up (.partial-, .old-, temp files)."""
    return sorted(name for name in os.listdir(folder) if ".partial-" in name or ".old-" in name
                  or name.startswith(".tmp-") or name.endswith(".tmp"))


def edit_manifest(export_dir, change):
    """Apply `change(manifest)` to DIR/manifest.json in place."""
    import json

    path = export_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def write_file_saved_model(path, sentinel):
    """A real SavedModel whose serving signature writes `sentinel` (tf.io.write_file), then returns zeros."""
    import tensorflow as tf

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="input")])
        def serve(self, x):
            tf.io.write_file(str(sentinel), "written by a SavedModel during verify")
            return tf.zeros([tf.shape(x)[0], 10])

    writer = Writer()
    tf.saved_model.save(writer, str(path), signatures={"serving_default": writer.serve})


def add_saved_model_artifact(export_dir, sentinel):
    """Put the file-writing SavedModel into DIR as artifact `saved_model`, its sha256 rewritten to match."""
    from export.manifest import sha256_of

    write_file_saved_model(export_dir / "saved_model", sentinel)
    entry = {"file": "saved_model", "format": "saved_model", "precision": "fp32",
             "sha256": sha256_of(export_dir / "saved_model"), "inputs": [], "outputs": [], "parity": None}
    edit_manifest(export_dir, lambda manifest: manifest["artifacts"].append(entry))
