"""The CPU-kind table: expansion of names and aliases, the unknown-name error, readiness lines, the cache folder,
and the set-up's status (real files and environment variables, nothing mocked)."""
import os
import pathlib

import pytest

from export.core.errors import UserError
from export.cpus import install as cpu_install
from export.cpus.kinds import ALIASES, BY_NAME, INSTALL, KINDS, cache_dir, cpuinfo_text, expand, missing


def test_expand_keeps_order_and_resolves_the_alias_once():
    assert [k.name for k in expand(["host", "arm64", "arm64-v8", "x86-sse4"])] == \
        ["host", "arm64-dotprod", "arm64-v8", "x86-sse4"]
    assert expand([]) == []


def test_unknown_kind_is_one_line_naming_it_and_the_allowed_names():
    with pytest.raises(UserError) as error:
        expand(["host", "arm32"])
    message = str(error.value)
    assert "\n" not in message and "'arm32'" in message
    assert all(name in message for name in [*BY_NAME, *ALIASES])


def test_every_row_says_how_it_runs():
    assert len(BY_NAME) == len(KINDS) and set(ALIASES["arm64"]) <= set(BY_NAME)
    for kind in KINDS:
        assert kind.stands_for and kind.installed_by
        assert (kind.emulator is None) == (kind.cpu_model is None) == (kind.name == "host")
        assert bool(kind.cpuinfo) == (kind.python == "arm64") == (kind.arch == "aarch64" and kind.emulator is not None)
    assert "asimddp" in BY_NAME["arm64-dotprod"].cpuinfo[1].split()
    assert "asimddp" not in BY_NAME["arm64-v8"].cpuinfo[1].split()


def test_cpuinfo_lists_one_block_per_core():
    text = cpuinfo_text(BY_NAME["arm64-v8"], 3)
    assert text.count("processor\t:") == 3 and text.count("CPU part\t: 0xd08") == 3


def test_host_is_always_ready():
    assert missing(BY_NAME["host"]) is None


def test_an_empty_cache_makes_arm64_kinds_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RESZOO_CPU_CACHE", str(tmp_path))
    for name in ALIASES["arm64"]:
        line = missing(BY_NAME[name])
        assert line.startswith(f"{name} needs ") and "\n" not in line
        assert INSTALL in line or "qemu-user-static" in line


def test_cache_folder_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("RESZOO_CPU_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "reszoo" / "cpus"
    monkeypatch.setenv("RESZOO_CPU_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("RESZOO_CPU_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == pathlib.Path.home() / ".cache" / "reszoo" / "cpus"


def test_status_lists_every_kind_with_its_runtimes():
    rows = {row["name"]: row for row in cpu_install.status()}
    assert list(rows) == list(BY_NAME)
    host = rows["host"]
    assert host["ready"] and host["missing"] is None
    assert all(host["runtimes"][name] for name in ("numpy", "onnxruntime", "ai-edge-litert"))
    for row in rows.values():
        assert row["ready"] == (row["missing"] is None)


def test_install_is_a_no_op_when_everything_is_there():
    """Runs nothing (no apt, no network) once set up; without a set-up: skipped, or failed under CI=true."""
    undone = [step.name for step in cpu_install.STEPS if not step.done()]
    reason = f"not set up here ({', '.join(undone)}): {INSTALL}"
    if undone and os.environ.get("CI") == "true":
        pytest.fail(reason)
    if undone:
        pytest.skip(reason)
    calls = []
    assert cpu_install.install(progress=lambda *call: calls.append(call)) == []
    total = len(cpu_install.STEPS)
    assert [done for _, done, _ in calls] == [*range(total), total] and {t for _, _, t in calls} == {total}
