"""The CPU kinds an export can be run on: this machine, or another CPU emulated with QEMU user mode.

One row per kind (`KINDS`), `expand` turns user-given names (and the alias `arm64`) into rows, `missing`
says what a kind still needs here. The emulated kinds and why these QEMU 7.2 `-cpu` models:
- x86 kinds run this venv's own python and packages under `qemu-x86_64-static`: `Haswell` reports AVX2+FMA
  and no AVX-512, `Nehalem` SSE4.2 and no AVX (CPUID as the emulated process sees it). QEMU's TCG has no
  AVX-512, so AVX-512/VNNI kernels cannot be emulated.
- arm64 kinds run Debian bookworm's python3.11 from an arm64 root (`-L`) with aarch64 wheels: `cortex-a72`
  is ARMv8.0 (no dot product: the runtimes' plain NEON int8 kernels), `cortex-a76` ARMv8.2 with dot product
  and no i8mm (`max` would add i8mm and SVE, whose kernels the runtimes prefer over the dotprod ones).
  QEMU 7.2 shows the host's x86 /proc/cpuinfo to guests; the runtimes' cpuinfo parsers then crash or pick
  kernels the model lacks, so each arm64 kind gets its own root view (`kind_root`) whose /proc/cpuinfo
  matches the model's HWCAP (`CpuKind.cpuinfo`).

Example:
    >>> [kind.name for kind in expand(["arm64", "host"])]
    ['arm64-dotprod', 'arm64-v8', 'host']
"""
import dataclasses
import os
import pathlib
import platform
import shutil

from export.core.errors import UserError

INSTALL = "run `reszoo cpus install`"
ROOT_PYTHON = "usr/bin/python3.11"  # Debian bookworm's python3, inside the arm64 root


@dataclasses.dataclass(frozen=True)
class CpuKind:
    """One CPU kind: how its Python is started and what it stands for."""

    name: str
    arch: str                    # what the code runs as: x86_64, aarch64 (host: this machine's)
    emulator: str | None         # QEMU user-mode binary; None runs natively
    cpu_model: str | None        # QEMU -cpu model
    stands_for: str              # the real CPUs it stands for, one line
    installed_by: str            # how it gets onto this machine, one line
    python: str = "venv"         # "venv": this venv's python + packages; "arm64": the arm64 root + wheels
    cpuinfo: tuple = ()          # arm64: ("CPU part", "Features") of its /proc/cpuinfo, as the model's HWCAP


X86 = "apt package qemu-user-static; runs this venv's python and packages"
ARM64 = "apt packages qemu-user-static + debootstrap; an arm64 Debian root and aarch64 wheels in the cache"
KINDS = (
    CpuKind("host", platform.machine(), None, None, "this machine's CPU, no emulation", "nothing to install"),
    CpuKind("x86-avx2", "x86_64", "qemu-x86_64-static", "Haswell",
            "x86-64 with AVX2+FMA and no AVX-512 (most Intel Core since Haswell, AMD Zen 1-3)", X86),
    CpuKind("x86-sse4", "x86_64", "qemu-x86_64-static", "Nehalem",
            "x86-64 up to SSE4.2, no AVX (old servers, Atom/Celeron/Pentium Silver)", X86),
    CpuKind("arm64-dotprod", "aarch64", "qemu-aarch64-static", "cortex-a76",
            "ARMv8.2 with dot product, no i8mm (Raspberry Pi 5, Cortex-A76/A78/X1 phones, Neoverse N1)", ARM64,
            "arm64", ("0xd0b", "fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                               "dcpop asimddp")),
    CpuKind("arm64-v8", "aarch64", "qemu-aarch64-static", "cortex-a72",
            "ARMv8.0 NEON, no dot product (Raspberry Pi 3/4, Cortex-A53/A72 boards, older phones)", ARM64,
            "arm64", ("0xd08", "fp asimd aes pmull sha1 sha2 crc32 cpuid")),
)
ALIASES = {"arm64": ("arm64-dotprod", "arm64-v8")}
BY_NAME = {kind.name: kind for kind in KINDS}


def allowed_names():
    """Every name `expand` accepts: the kinds, then the aliases."""
    return [*BY_NAME, *ALIASES]


def expand(names):
    """The rows of `names` (kind names or aliases), in order, each once; UserError for an unknown name.

    Example:
        >>> expand(["x86-avx2"])[0].cpu_model
        'Haswell'
    """
    rows = []
    for name in names:
        if name not in BY_NAME and name not in ALIASES:
            raise UserError(f"unknown CPU kind {name!r}; allowed: {', '.join(allowed_names())}")
        rows += [BY_NAME[each] for each in ALIASES.get(name, (name,)) if BY_NAME[each] not in rows]
    return rows


def cache_dir():
    """$RESZOO_CPU_CACHE, else $XDG_CACHE_HOME/reszoo/cpus, else ~/.cache/reszoo/cpus."""
    if os.environ.get("RESZOO_CPU_CACHE"):
        return pathlib.Path(os.environ["RESZOO_CPU_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "reszoo" / "cpus"


def arm64_root():
    """The arm64 Debian root (debootstrap --foreign, every package unpacked)."""
    return cache_dir() / "arm64-root"


def arm64_site():
    """The folder of unpacked aarch64 wheels (put on PYTHONPATH)."""
    return cache_dir() / "arm64-site"


def site_marker():
    """Written last by the wheel install: the requirements installed, one a line."""
    return arm64_site() / "INSTALLED"


def kind_root(kind):
    """`kind`'s view of the arm64 root (QEMU -L): links to the root's top folders, its own proc/cpuinfo."""
    return cache_dir() / "views" / kind.name


def cpuinfo_text(kind, processors):
    """The /proc/cpuinfo an arm64 `kind` shows, with `processors` identical cores."""
    part, features = kind.cpuinfo
    block = (f"BogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n")
    return "".join(f"processor\t: {i}\n{block}\n" for i in range(processors))


def view_ready(kind):
    """True when `kind`'s root view shows its /proc/cpuinfo (the first core is compared)."""
    path = kind_root(kind) / "proc" / "cpuinfo"
    return path.is_file() and path.read_text().startswith(cpuinfo_text(kind, 1))


# requirement -> (is it met for this kind?, how to meet it)
REQUIREMENTS = {
    "qemu-user-static": (lambda kind: shutil.which(kind.emulator), INSTALL),
    "an x86-64 host": (lambda kind: platform.machine() == "x86_64",
                       f"it emulates this venv's own python, and this machine is {platform.machine()}"),
    "the arm64 Debian root": (lambda kind: (arm64_root() / ROOT_PYTHON).is_file(), INSTALL),
    "the aarch64 wheels": (lambda kind: site_marker().is_file(), INSTALL),
    "its arm64 root view": (view_ready, INSTALL),
}
NEEDS = {"venv": ("qemu-user-static", "an x86-64 host"),
         "arm64": ("qemu-user-static", "the arm64 Debian root", "the aarch64 wheels", "its arm64 root view")}


def missing(kind):
    """None when `kind` can run here, else one line saying what it needs and how to get it.

    Example:
        >>> missing(BY_NAME["host"]) is None
        True
    """
    if kind.emulator is None:
        return None
    for need in NEEDS[kind.python]:
        met, how = REQUIREMENTS[need]
        if not met(kind):
            return f"{kind.name} needs {need}: {how}"
    return None
