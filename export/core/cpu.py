"""CPU facts for benchmarks and export reports: the model name, the architecture and the int8-relevant ISA flags.

Read from /proc/cpuinfo (Linux: x86 `flags`, ARM `Features`), else from `sysctl` (macOS), else `platform`.
Imports nothing from the rest of `export` or from `reszoo`, and no TensorFlow.

Example:
    >>> facts = cpu_facts("model name : Example CPU\\nflags : fpu avx2 avx512f\\n", machine="x86_64")
    >>> facts["model"], facts["int8_flags"]["avx2"], facts["int8_flags"]["avx512_vnni"]
    ('Example CPU', True, False)
"""
import platform
import subprocess

CPUINFO = "/proc/cpuinfo"

# architecture family -> machine-name prefixes (platform.machine(), lowercased)
ARCH_PREFIXES = {"x86": ("x86", "amd64", "i386", "i686"), "arm": ("aarch64", "arm")}

# family -> {reported flag: spellings that set it}; cpuinfo spellings first, then macOS sysctl ones
INT8_FLAGS = {
    "x86": {"avx2": ("avx2",), "avx512f": ("avx512f",), "avx512_vnni": ("avx512_vnni", "avx512vnni"),
            "avx_vnni": ("avx_vnni", "avxvnni"), "amx_tile": ("amx_tile",), "amx_int8": ("amx_int8",)},
    "arm": {"neon": ("neon", "asimd", "advsimd"), "asimddp": ("asimddp", "feat_dotprod"),
            "i8mm": ("i8mm", "feat_i8mm")},
}

MODEL_KEYS = ("model name", "cpu model", "processor", "hardware", "model")  # first one with a non-numeric value
FLAG_KEYS = ("flags", "features")

# macOS (no /proc/cpuinfo): sysctl feature lists, and boolean sysctls whose last name part is a flag
DARWIN_FEATURE_LISTS = ("machdep.cpu.features", "machdep.cpu.leaf7_features")
DARWIN_BOOLEAN_FLAGS = ("hw.optional.neon", "hw.optional.AdvSIMD", "hw.optional.arm.FEAT_DotProd",
                        "hw.optional.arm.FEAT_I8MM")


def cpu_facts(cpuinfo=None, machine=None):
    """{"model", "machine", "int8_flags"} of this CPU (or of the given cpuinfo text and machine name).

    `int8_flags` maps each int8-relevant flag of the architecture to True/False; it is empty when the
    architecture is unknown or no flag list could be read.

    Example:
        >>> arm = cpu_facts("processor : 0\\nFeatures : fp asimd asimddp\\nCPU part : 0xd0c\\n", machine="aarch64")
        >>> arm["int8_flags"]
        {'neon': True, 'asimddp': True, 'i8mm': False}
    """
    machine = machine or platform.machine()
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    fields = parse_cpuinfo(text)
    return {"model": model_name(fields, machine), "machine": machine,
            "int8_flags": int8_flags(flag_set(fields), machine)}


def read_cpuinfo():
    """The text of /proc/cpuinfo, else a cpuinfo-like text from macOS sysctl, else ''."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return darwin_cpuinfo() if platform.system() == "Darwin" else ""


def sysctl(name):
    """`sysctl -n name` as stripped text, None when it fails (not macOS, unknown name).

    Example:
        >>> sysctl("no.such.name") is None
        True
    """
    try:
        done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def darwin_cpuinfo():
    """A cpuinfo-like text from macOS sysctl: the brand string and the feature names."""
    features = [sysctl(name) or "" for name in DARWIN_FEATURE_LISTS]
    features += [name.rsplit(".", 1)[1] for name in DARWIN_BOOLEAN_FLAGS if sysctl(name) == "1"]
    return f"model name : {sysctl('machdep.cpu.brand_string') or ''}\nflags : {' '.join(features)}\n"


def parse_cpuinfo(text):
    """{lowercased key: value} of `key : value` lines; the first occurrence wins (the first processor).

    Example:
        >>> parse_cpuinfo("processor : 0\\nmodel name : X\\nprocessor : 1\\nmodel name : Y\\n")["model name"]
        'X'
    """
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def model_name(fields, machine):
    """The CPU's name from cpuinfo fields; ARM without one: implementer/part ids; else `platform`'s answer.

    Example:
        >>> model_name({"cpu implementer": "0x41", "cpu part": "0xd0c"}, "aarch64")
        'aarch64 CPU implementer 0x41 part 0xd0c'
    """
    for key in MODEL_KEYS:
        value = fields.get(key, "")
        if value and not value.isdigit():  # x86 and ARM "processor : 0" is an index, not a name
            return value
    if "cpu implementer" in fields:
        return f"{machine} CPU implementer {fields['cpu implementer']} part {fields.get('cpu part', '?')}"
    return platform.processor() or machine


def flag_set(fields):
    """Lowercased flag names from the `flags` (x86) or `Features` (ARM) field."""
    return {flag.lower() for key in FLAG_KEYS for flag in fields.get(key, "").split()}


def arch_family(machine):
    """'x86', 'arm' or None for a machine name such as 'x86_64', 'AMD64', 'aarch64', 'armv7l'.

    Example:
        >>> arch_family("AMD64"), arch_family("arm64"), arch_family("riscv64")
        ('x86', 'arm', None)
    """
    machine = (machine or "").lower()
    return next((family for family, prefixes in ARCH_PREFIXES.items() if machine.startswith(prefixes)), None)


def int8_flags(flags, machine):
    """{flag: present} for the int8-relevant flags of `machine`'s architecture; {} when unknown or unread."""
    table = INT8_FLAGS.get(arch_family(machine), {})
    if not flags:
        return {}
    return {name: any(spelling in flags for spelling in spellings) for name, spellings in table.items()}


def describe_int8_flags(flags):
    """One phrase for reports: which int8 flags the CPU has and which it lacks.

    Example:
        >>> describe_int8_flags({"avx2": True, "avx512_vnni": False})
        'int8 ISA: avx2; no avx512_vnni'
        >>> describe_int8_flags({})
        'int8 ISA: unknown'
    """
    if not flags:
        return "int8 ISA: unknown"
    present = [name for name, value in flags.items() if value]
    absent = [name for name, value in flags.items() if not value]
    words = ([", ".join(present)] if present else []) + ([f"no {', '.join(absent)}"] if absent else [])
    return "int8 ISA: " + "; ".join(words)
