"""export.core.cpu: model name and int8 ISA flags from fake /proc/cpuinfo texts (x86, ARM), fallbacks, no imports."""
import subprocess
import sys

from export.core import cpu
from export.core.cpu import arch_family, cpu_facts, describe_int8_flags

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse2 avx avx2 fma avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: some other name
flags\t\t: fpu
"""

ZEN2_CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma
"""

ARM64_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0c
"""

ARMV7_PI_CPUINFO = """processor\t: 0
model name\t: ARMv7 Processor rev 4 (v7l)
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
Hardware\t: BCM2835
Model\t\t: Raspberry Pi 3 Model B Rev 1.2
"""


def test_x86_model_name_and_int8_flags_come_from_the_first_processor():
    facts = cpu_facts(X86_CPUINFO, machine="x86_64")
    assert facts == {"model": "Intel(R) Xeon(R) Platinum 8480+", "machine": "x86_64",
                     "int8_flags": {"avx2": True, "avx512f": True, "avx512_vnni": True, "avx_vnni": False,
                                    "amx_tile": True, "amx_int8": True}}


def test_x86_without_vnni_reports_every_int8_flag_absent_but_avx2():
    flags = cpu_facts(ZEN2_CPUINFO, machine="AMD64")["int8_flags"]
    assert [name for name, present in flags.items() if present] == ["avx2"]
    assert describe_int8_flags(flags) == "int8 ISA: avx2; no avx512f, avx512_vnni, avx_vnni, amx_tile, amx_int8"


def test_arm64_asimd_counts_as_neon_and_the_name_falls_back_to_implementer_and_part():
    facts = cpu_facts(ARM64_CPUINFO, machine="aarch64")
    assert facts["int8_flags"] == {"neon": True, "asimddp": True, "i8mm": False}
    assert facts["model"] == "aarch64 CPU implementer 0x41 part 0xd0c"
    assert "avx2" not in facts["int8_flags"]  # only the architecture's own flags are reported


def test_armv7_neon_without_dot_product():
    facts = cpu_facts(ARMV7_PI_CPUINFO, machine="armv7l")
    assert facts["model"] == "ARMv7 Processor rev 4 (v7l)"
    assert facts["int8_flags"] == {"neon": True, "asimddp": False, "i8mm": False}


def test_no_cpuinfo_gives_the_platform_name_and_no_flags(monkeypatch):
    monkeypatch.setattr(cpu.platform, "processor", lambda: "")
    facts = cpu_facts("", machine="riscv64")
    assert facts == {"model": "riscv64", "machine": "riscv64", "int8_flags": {}}
    assert describe_int8_flags(facts["int8_flags"]) == "int8 ISA: unknown"
    assert cpu_facts("", machine="x86_64")["int8_flags"] == {}  # unread flags are unknown, not "all absent"


def test_unreadable_proc_cpuinfo_on_linux_falls_back_without_error(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu, "CPUINFO", str(tmp_path / "missing"))
    monkeypatch.setattr(cpu.platform, "system", lambda: "Linux")
    assert cpu.read_cpuinfo() == ""


def test_macos_sysctl_fallback_is_parsed_like_cpuinfo(monkeypatch):
    answers = {"machdep.cpu.brand_string": "Apple M2", "hw.optional.neon": "1", "hw.optional.arm.FEAT_DotProd": "1",
               "hw.optional.arm.FEAT_I8MM": "0"}
    monkeypatch.setattr(cpu, "sysctl", answers.get)
    facts = cpu_facts(cpu.darwin_cpuinfo(), machine="arm64")
    assert facts == {"model": "Apple M2", "machine": "arm64",
                     "int8_flags": {"neon": True, "asimddp": True, "i8mm": False}}


def test_arch_families():
    assert [arch_family(m) for m in ("x86_64", "i686", "aarch64", "arm64", "armv7l", "s390x", None)] == \
        ["x86", "x86", "arm", "arm", "arm", None, None]


def test_this_machine_gives_a_name_and_imports_nothing_heavy():
    code = ("import sys, export.core; before = set(sys.modules); from export.core.cpu import cpu_facts; "
            "f = cpu_facts(); assert f['model'] and f['machine'], f; "
            "new = [m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('export', 'reszoo', 'tensorflow', 'keras', 'numpy')]; assert new == ['export.core.cpu'], new")
    subprocess.run([sys.executable, "-c", code], check=True)
