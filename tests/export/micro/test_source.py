"""`export.micro.source`: the generated .cc compiles with the system C++ compiler, holds exactly the .tflite bytes,
16-byte aligned; the header's register-ops template calls the resolver method of every op the model uses."""
import shutil
import subprocess

import pytest

from export.core.errors import UserError
from export.micro.ops import RESOLVER_METHODS
from export.micro.source import parse_array, render_source, symbol_for

COMPILER = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler (c++/g++/clang++) on PATH")

DUMP_MAIN = r"""
#include <cstdint>
#include <cstdio>
#include "tiny_model_data.h"
int main(int, char** argv) {
  if (reinterpret_cast<std::uintptr_t>(tiny_model_data) % 16 != 0) return 3;
  std::FILE* out = std::fopen(argv[1], "wb");
  if (!out || std::fwrite(tiny_model_data, 1, tiny_model_data_len, out) != tiny_model_data_len) return 4;
  std::fclose(out);
  return 0;
}
"""

RESOLVER_MAIN = r"""
#include <cstdio>
#include <string>
#include <vector>
#include "tiny_model_data.h"
struct FakeResolver {  // records what the header registers; returns 0 (kTfLiteOk) like TFLM's resolver
  std::vector<std::string> names;
%(methods)s
};
static_assert(sizeof(tiny_model_data_op_names) / sizeof(tiny_model_data_op_names[0]) == tiny_model_data_op_count,
              "one name per op");
int main() {
  FakeResolver resolver;
  int failed = tiny_model_data_register_ops(resolver);
  for (const std::string& name : resolver.names) std::printf("%%s\n", name.c_str());
  std::printf("op_count=%%u failed=%%d arena=%%u\n", tiny_model_data_op_count, failed, tiny_model_data_arena_size);
  return 0;
}
"""


def compile_and_run(folder, main_source, sources, *args):
    """Compile main.cc (+ `sources`) with the system compiler, warnings as errors; run it; its stdout."""
    (folder / "main.cc").write_text(main_source)
    binary = folder / "main"
    subprocess.run([COMPILER, "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{folder}", "-o", str(binary),
                    str(folder / "main.cc"), *map(str, sources)], check=True, capture_output=True, text=True)
    return subprocess.run([str(binary), *map(str, args)], check=True, capture_output=True, text=True).stdout


def copy_sources(micro_files, folder):
    for key in ("cc", "h"):
        shutil.copy(micro_files[key], folder)
    return folder / "tiny_model_data.cc"


@needs_compiler
def test_cc_compiles_and_its_array_is_the_tflite_bytes_16_byte_aligned(micro_files, tmp_path):
    source = copy_sources(micro_files, tmp_path)
    compile_and_run(tmp_path, DUMP_MAIN, [source], tmp_path / "dumped.bin")
    with open(micro_files["tflite"], "rb") as handle:
        assert (tmp_path / "dumped.bin").read_bytes() == handle.read()


@needs_compiler
def test_register_ops_calls_the_method_of_every_model_op_and_nothing_else(micro_export, micro_files, tmp_path):
    from export.targets import read_graph

    methods = "\n".join(f'  int {method}() {{ names.push_back("{method}"); return 0; }}'
                        for method in sorted(RESOLVER_METHODS.values()))
    copy_sources(micro_files, tmp_path)
    *registered, summary = compile_and_run(tmp_path, RESOLVER_MAIN % {"methods": methods}, []).splitlines()
    model_ops = list(dict.fromkeys(op["op_name"] for op in read_graph(micro_files["tflite"])["ops"]))
    op_of = {method: op for op, method in RESOLVER_METHODS.items()}
    assert [op_of[name] for name in registered] == model_ops  # every op once, in order of first use
    entry = next(a for a in micro_export.artifacts if a["format"] == "micro")
    assert summary == f"op_count={len(model_ops)} failed=0 arena={entry['micro']['arena']['arena_bytes']}"


def test_array_round_trips_and_a_malformed_one_is_refused():
    data = bytes(range(256)) * 3 + b"\x07"
    text = render_source(data, "m_model_data", "m_model_data.h")
    assert parse_array(text) == data
    cases = {  # edit -> what the one-line error names
        text.replace(f"_len = {len(data)};", f"_len = {len(data) + 1};"): "m_model_data_len is 770",
        text.replace("0x07,", "0x7,"): "holds something other than 0xHH bytes",
        text + text[text.index("alignas"):]: "found 2",
        "int x;": "found 0",
    }
    for edited, fragment in cases.items():
        with pytest.raises(UserError, match=fragment):
            parse_array(edited, "m.cc")


def test_symbols_are_c_identifiers_of_the_file_stem():
    assert symbol_for("out/resnet20_digits_model_data.cc") == "resnet20_digits_model_data"
    assert symbol_for("a-b.c d_model_data.cc") == "a_b_c_d_model_data"
    assert symbol_for("3x_model_data.cc") == "model_3x_model_data"
    with pytest.raises(UserError, match="cannot be #included"):
        render_source(b"\x00", "m", 'a"b.h')
