"""Set up the emulated CPU kinds, idempotently, in the cache folder (`kinds.cache_dir()`).

Steps (`STEPS`), each skipped when already done: the apt packages qemu-user-static + debootstrap (root only),
an arm64 Debian bookworm root (debootstrap --foreign, then every .deb unpacked with dpkg-deb -x: there is no
binfmt_misc for the second stage), the aarch64 wheels of `WHEELS` unpacked into a site folder, and one root
view per arm64 kind with its own /proc/cpuinfo. The x86 kinds need only the emulator: they run this venv's
python. Third-party output goes to `install.log` in the cache folder; a failing step raises `InstallError`
naming the step and the log. Measured on a 2-core EPYC: about 1 min from nothing (apt 15 s, debootstrap
35 s, pip 11 s) for a 336 MB cache (arm64 root 152 MB, wheels 184 MB).

Example:
    >>> install(progress=lambda step, done, total: print(f"{done}/{total} {step}"))  # doctest: +SKIP
"""
import dataclasses
import datetime
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys

from export.core.errors import UserError
from export.core.files import remove_created, replace_dir
from export.cpus import kinds as cpu_kinds

APT_PACKAGES = ("qemu-user-static", "debootstrap")
EMULATORS = ("qemu-x86_64-static", "qemu-aarch64-static")
DEBIAN = ("bookworm", "http://deb.debian.org/debian")  # its python3 is 3.11, like the venv; glibc 2.36
GLIBC_MINOR = 36
STEP_TIMEOUT = 1800  # seconds for one third-party command
PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists")  # ~100 MB nothing reads

# The aarch64 wheels of the arm64 kinds (pip resolves their dependencies), with why this version.
# QEMU 7.2 shows the host's x86 /proc/cpuinfo to guests: with it, onnxruntime 1.28..1.32 segfault at import and
# ai-edge-litert 2.3.0 in Interpreter(); with each kind's own cpuinfo view both run (1.20.1..1.27.0 ran either way).
WHEELS = (
    ("numpy==2.4.6", "the venv's numpy: the litert and onnxruntime wheels are built against numpy 2"),
    ("onnxruntime==1.32.0", "the venv's version, so arm64 and host differ only by CPU"),
    ("ai-edge-litert==2.3.0", "the venv's version; XNNPACK picks NEON or dotprod kernels from cpuinfo"),
)


class InstallError(RuntimeError):
    """A setup step failed; the message names the step, the command and the log file."""


def log_path():
    return cpu_kinds.cache_dir() / "install.log"


def run_logged(step, argv, env=None):
    """Run `argv` with its output appended to the install log; InstallError when it fails."""
    command = shlex.join(map(str, argv))
    with open(log_path(), "a", encoding="utf-8") as log:
        log.write(f"\n[{datetime.datetime.now():%Y-%m-%d %H:%M:%S}] {step}: $ {command}\n")
        log.flush()
        try:
            code = subprocess.run(list(map(str, argv)), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env={**os.environ, **(env or {})}, timeout=STEP_TIMEOUT).returncode
        except (OSError, subprocess.TimeoutExpired) as error:
            code = error
    if code != 0:
        last = (log_path().read_text(errors="replace").strip().splitlines() or [""])[-1].strip()
        raise InstallError(f"cpus install step {step!r} failed: {os.path.basename(str(argv[0]))} ended with "
                           f"{code} ({last}); the command and its output are in {log_path()}")


def need_root(what, command):
    """UserError unless this process is root: `what` needs root, `command` is how to run it."""
    if os.geteuid() != 0:
        raise UserError(f"{what} needs root: run `{command}`")


def emulators_ready():
    return all(shutil.which(name) for name in (*EMULATORS, "debootstrap"))


def install_emulators(step):
    if not shutil.which("apt-get"):
        raise UserError(f"install {' and '.join(APT_PACKAGES)} with this system's package manager")
    need_root("installing " + " and ".join(APT_PACKAGES), f"sudo apt-get install -y {' '.join(APT_PACKAGES)}")
    apt = {"DEBIAN_FRONTEND": "noninteractive"}
    run_logged(step, ["apt-get", "update"], apt)
    run_logged(step, ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES], apt)


def root_ready():
    return (cpu_kinds.arm64_root() / cpu_kinds.ROOT_PYTHON).is_file()


def install_root(step):
    need_root("debootstrap (the arm64 root)", f"sudo env RESZOO_CPU_CACHE={cpu_kinds.cache_dir()} "
              f"{sys.executable} -m reszoo cpus install")
    root = cpu_kinds.arm64_root()
    partial = root.with_name(root.name + ".partial")
    remove_created(partial)
    suite, mirror = DEBIAN
    run_logged(step, ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase", "--include=python3",
                      suite, partial, mirror])
    archives = partial / "var" / "cache" / "apt" / "archives"
    for deb in sorted(archives.glob("*.deb")):  # the second stage, without running anything arm64
        run_logged(step, ["dpkg-deb", "-x", deb, partial])
        deb.unlink()
    for folder in PRUNE:
        remove_created(partial / folder)
    replace_dir(partial, root)


def wheels_text():
    """The marker's content: the requirements installed, one a line."""
    return "".join(f"{requirement}\n" for requirement, _ in WHEELS)


def wheels_ready():
    marker = cpu_kinds.site_marker()
    return marker.is_file() and marker.read_text() == wheels_text()


def install_wheels(step):
    site = cpu_kinds.arm64_site()
    partial = site.with_name(site.name + ".partial")
    remove_created(partial)
    platforms = [f"--platform=manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC_MINOR + 1)]
    run_logged(step, [sys.executable, "-m", "pip", "install", "--target", partial, "--only-binary=:all:",
                      "--implementation=cp", "--python-version=3.11", "--platform=manylinux2014_aarch64",
                      *platforms, "--no-warn-script-location", *(requirement for requirement, _ in WHEELS)])
    (partial / cpu_kinds.site_marker().name).write_text(wheels_text())
    replace_dir(partial, site)


def arm64_kinds():
    return [kind for kind in cpu_kinds.KINDS if kind.python == "arm64"]


def views_ready():
    return all(cpu_kinds.view_ready(kind) for kind in arm64_kinds())


def make_views(step):
    """Per arm64 kind: links to the root's top folders, and a proc/ of its own holding its cpuinfo."""
    root = cpu_kinds.arm64_root()
    for kind in arm64_kinds():
        view = cpu_kinds.kind_root(kind)
        remove_created(view)
        (view / "proc").mkdir(parents=True)
        for entry in root.iterdir():
            if entry.name != "proc":
                (view / entry.name).symlink_to(entry)
        (view / "proc" / "cpuinfo").write_text(cpu_kinds.cpuinfo_text(kind, os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    done: object  # () -> bool
    run: object   # (step name) -> None


STEPS = (
    Step("emulators (apt: qemu-user-static, debootstrap)", emulators_ready, install_emulators),
    Step("arm64 Debian root (debootstrap)", root_ready, install_root),
    Step("aarch64 wheels (pip)", wheels_ready, install_wheels),
    Step("arm64 cpuinfo views", views_ready, make_views),
)


def install(progress=None):
    """Run every step not done yet; `progress(step_name, done, total)` is called before each step and at the
    end. Returns the names of the steps that ran (none when everything was there)."""
    cpu_kinds.cache_dir().mkdir(parents=True, exist_ok=True)
    ran = []
    for index, step in enumerate(STEPS):
        if progress:
            progress(step.name, index, len(STEPS))
        if not step.done():
            step.run(step.name)
            ran.append(step.name)
    if progress:
        progress(STEPS[-1].name, len(STEPS), len(STEPS))
    return ran


RUNTIMES = ("numpy", "onnxruntime", "ai-edge-litert")


def runtime_versions(kind):
    """{package: version} of the runtimes `kind` runs (None where absent)."""
    path = [str(cpu_kinds.arm64_site())] if kind.python == "arm64" else sys.path
    found = {dist.metadata["Name"].lower(): dist.version for dist in importlib.metadata.distributions(path=path)}
    return {name: found.get(name) for name in RUNTIMES}


def stale(kind):
    """One line when an arm64 kind's wheels are not the pinned ones, else None."""
    if kind.python != "arm64" or wheels_ready():
        return None
    return f"{kind.name} has other aarch64 wheels than {', '.join(r for r, _ in WHEELS)}: {cpu_kinds.INSTALL}"


def status():
    """One dict per kind: name, stands_for, cpu_model, ready, missing (None or one line), runtimes."""
    rows = []
    for kind in cpu_kinds.KINDS:
        problem = cpu_kinds.missing(kind) or stale(kind)
        rows.append({"name": kind.name, "stands_for": kind.stands_for, "cpu_model": kind.cpu_model,
                     "ready": problem is None, "missing": problem, "runtimes": runtime_versions(kind)})
    return rows
