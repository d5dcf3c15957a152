"""Assertions shared by the CLI and safety tests: one-line user errors, file snapshots, leftovers."""
import os


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
                  or name.endswith(".tmp"))
