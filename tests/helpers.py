"""Assertions shared by the CLI and safety tests: one-line user errors, file snapshots, leftovers."""
import os

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
# the trained tiny test models (tools/make_test_models.py), the same weights on every CPU
TEST_MODELS = {"w4": os.path.join(ASSETS, "tiny_w4.keras"), "w8": os.path.join(ASSETS, "tiny_w8.keras")}


def run_reszoo(*args, cwd=None, timeout=900, env=None):
    """Run `reszoo ARGS...` in a subprocess (as users do), `env` added to this environment; CompletedProcess
    with text output."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "reszoo", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=None if env is None else {**os.environ, **env})


def require_cpus(*names):
    """The `export.cpus.kinds` rows of `names`; skips the test with the install command when one is not set up
    here, and fails instead under CI=true (CI installs them: `.ci/run`)."""
    import pytest

    from export.cpus.kinds import expand, missing

    rows = expand(names)
    problems = [problem for problem in map(missing, rows) if problem]
    if problems and os.environ.get("CI") == "true":
        pytest.fail("; ".join(problems))
    if problems:
        pytest.skip(f"emulated CPU not set up ({'; '.join(problems)})")  # tests/conftest.py lists these
    return rows


def avx2_checks():
    """The CPU kinds that stand for AVX2 in an int8 parity test: [] when this host runs AVX2's int8 kernels
    itself (x86 with AVX2 and neither AVX-512 nor a VNNI: its own run is the AVX2 run), else the emulated x86-avx2
    (`require_cpus`), so a VNNI machine sees an AVX2 failure (VPMADDUBSW saturation) before it lands.
    RESZOO_EMULATE_AVX2=1 emulates it on an AVX2 host too (to run that path there)."""
    from export.core.cpu import arch_family, cpu_facts

    facts = cpu_facts()
    flags = facts["int8_flags"]
    avx2_host = arch_family(facts["machine"]) == "x86" and flags.get("avx2") and not any(
        flags.get(flag) for flag in ("avx512f", "avx512_vnni", "avx_vnni"))
    forced = os.environ.get("RESZOO_EMULATE_AVX2") == "1"
    return [] if avx2_host and not forced else require_cpus("x86-avx2")


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
