"""report.json, report.md and the rich summary table of an export run; the rich progress bar over its steps.

One row per artifact. When an artifact has several outputs (`parity["outputs"]`, see export.output_parity), the
table gains "worst output" and "SQNR dB" columns (its errors are the worst output's) and report.md a section
with every output of every artifact; a one-output export's table is unchanged.

Example:
    >>> row = {"file": "m_int8.tflite", "format": "tflite", "precision": "int8", "size_bytes": 2048,
    ...        "parity": {"max_abs_err": 0.01, "top1_agreement": 0.99, "passed": True, "failures": []}}
    >>> markdown_table([row]).splitlines()[2].startswith("| m_int8.tflite | tflite | int8 | 2.0 KiB")
    True
"""
import contextlib
import os
import time

from export.core.memory import peak_rss_mb, release_memory
from export.manifest import write_json

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
COLUMNS = ("artifact", "format", "precision", "size", "gzip", "max abs err", "top-1 agree", "acc Δ (pts)",
           "latency ms", "result")
OUTPUT_COLUMNS = ("worst output", "SQNR dB")  # inserted before "latency ms" when an artifact has several outputs
ORIGINAL_COLUMN = "acc Δ orig"  # after "acc Δ (pts)" when an optimization ran: accuracy change vs the given model
OUTPUT_DETAIL_COLUMNS = ("artifact", "output", "shape", "kind", "max abs err", "max err / range", "SQNR dB",
                         "top-1 agree", "result")


def human_size(size):
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0


def _number(value, pattern):
    return "—" if value is None else format(value, pattern)


def _result(parity):
    return "PASS" if parity.get("passed") else "FAIL: " + "; ".join(parity.get("failures") or ["not verified"])


def quantization_note(artifact):
    """What the per-layer report adds to an artifact's result: the worst layers of a failing file, or the
    layers a fallback kept in float ("" when neither).

    Example:
        >>> quantization_note({"parity": {"passed": False}, "quantization": {"worst_layers": [
        ...     {"layer": "conv2_bn", "sqnr_db": -2.34}, {"layer": "fc", "sqnr_db": 30.0}]}})
        'worst layers: conv2_bn -2.3 dB, fc 30.0 dB'
    """
    facts = artifact.get("quantization") or {}
    fallback = facts.get("fallback") or {}
    if fallback.get("passed"):
        return "float layers: " + ", ".join(fallback["float_layers"])
    if (artifact.get("parity") or {}).get("passed") or not facts.get("worst_layers"):
        return ""
    worst = ", ".join(f"{w['layer']} {_number(w['sqnr_db'], '.1f')} dB" for w in facts["worst_layers"])
    tried = f" (fallback: {fallback['attempts']} tries did not pass)" if fallback.get("attempts") else ""
    return f"worst layers: {worst}{tried}"


def saturation_note(artifact):
    """A note when no compared sample had a usable logit besides the top one (`export.verify.informative_samples`):
    the error column then says nothing about the conversion ("" otherwise).

    Example:
        >>> saturation_note({"parity": {"samples": 64, "informative_samples": 0}})
        'softmax saturated on all 64 samples: logit error not measurable'
    """
    parity = artifact.get("parity") or {}
    if parity.get("informative_samples") != 0:
        return ""
    return f"softmax saturated on all {parity['samples']} samples: logit error not measurable"


def _result_cell(artifact):
    from export.slow_kernels import note as slow_kernels_note

    notes = [n for n in (quantization_note(artifact), saturation_note(artifact), slow_kernels_note(artifact)) if n]
    return _result(artifact.get("parity") or {}) + "".join(f" — {n}" for n in notes)


def has_several_outputs(artifacts):
    """True when any artifact's parity is per output (a multi-output model)."""
    return any((a.get("parity") or {}).get("outputs") for a in artifacts)


def against_original(artifacts):
    """True when artifact rows carry their accuracy change against the original (an optimized run)."""
    return any("accuracy_delta_vs_original" in (a.get("parity") or {}) for a in artifacts)


def columns(artifacts):
    """The table columns: COLUMNS, with ORIGINAL_COLUMN after the accuracy change in an optimized run and
    OUTPUT_COLUMNS before the latency when outputs are several."""
    names = COLUMNS
    if against_original(artifacts):
        at = names.index("acc Δ (pts)") + 1
        names = names[:at] + (ORIGINAL_COLUMN,) + names[at:]
    if not has_several_outputs(artifacts):
        return names
    at = names.index("latency ms")
    return names[:at] + OUTPUT_COLUMNS + names[at:]


def row_cells(artifact, per_output=False, vs_original=False):
    """The table cells of one artifact entry (manifest entry with "parity"); `per_output` adds OUTPUT_COLUMNS,
    `vs_original` the ORIGINAL_COLUMN."""
    parity = artifact.get("parity") or {}
    cells = (artifact["file"], artifact["format"], artifact["precision"], human_size(artifact.get("size_bytes", 0)),
             human_size(artifact.get("gzip_size_bytes", 0)), _number(parity.get("max_abs_err"), ".2e"),
             _number(parity.get("top1_agreement"), ".2%"), _number(parity.get("accuracy_delta"), "+.2f"))
    if vs_original:
        cells += (_number(parity.get("accuracy_delta_vs_original"), "+.2f"),)
    if per_output:
        cells += (parity.get("worst_output") or "—", _number(parity.get("sqnr_db"), ".1f"))
    return cells + (_number(parity.get("latency_ms_median"), ".3f"), _result_cell(artifact))


def _markdown_lines(header, rows):
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows]


def table_rows(artifacts, gate=None):
    """The cells of every table row: the optimization rows (`optimization_cells`) first, then the artifacts."""
    header = columns(artifacts)
    per_output, vs_original = has_several_outputs(artifacts), against_original(artifacts)
    return ([optimization_cells(row, header, gate["max_drop_pts"]) for row in (gate or {}).get("rows", [])]
            + [row_cells(a, per_output, vs_original) for a in artifacts])


def optimization_cells(row, header, max_drop):
    """One optimization step's table row: its name, 'optimization', its accuracy change against the original
    (in the accuracy columns) and its gate result ('FAIL: 90.6 % → 84.7 %, -5.9 pts (allowed −1.0)')."""
    from export.optimize.gate import row_result

    filled = {"artifact": row["label"], "format": "optimization", "acc Δ (pts)": _number(row["delta_pts"], "+.2f"),
              ORIGINAL_COLUMN: _number(row["delta_pts"], "+.2f"), "result": row_result(row, max_drop)}
    return tuple(filled.get(column, "—") for column in header)


def markdown_table(artifacts, gate=None):
    """A markdown table with one row per optimization step (`gate`: manifest optimizations["gate"]) and
    one row per artifact."""
    return "\n".join(_markdown_lines(columns(artifacts), table_rows(artifacts, gate)))


def output_rows(artifacts):
    """OUTPUT_DETAIL_COLUMNS cells of every output of every multi-output artifact, in output order."""
    rows = []
    for artifact in artifacts:
        for name, m in ((artifact.get("parity") or {}).get("outputs") or {}).items():
            rows.append((artifact["file"], name, "×".join(map(str, m.get("shape", []))), m.get("kind", ""),
                         _number(m.get("max_abs_err"), ".2e"), _number(m.get("max_rel_err"), ".2e"),
                         _number(m.get("sqnr_db"), ".1f"),
                         _number(m.get("top1_agreement"), ".2%") if m.get("kind") == "class_scores" else "—",
                         _result(m)))
    return rows


CPU_COLUMNS = ("artifact", "CPU", "emulated as", "samples", "top-1 agree", "acc Δ (pts)", "runtime", "result")


def cpu_rows(artifacts):
    """CPU_COLUMNS cells of every artifact's per-CPU verification (manifest `verified_on`, `export.cpus`).

    Example:
        >>> cpu_rows([{"file": "m_int8.tflite", "verified_on": {"arm64-v8": {"emulated_as": "cortex-a72",
        ...     "samples": 120, "top1_agreement": 1.0, "accuracy_delta": 0.0, "runtime": "ai-edge-litert 2.1",
        ...     "passed": True}}}])[0][1:5]
        ('arm64-v8', 'cortex-a72', '120', '100.00%')
    """
    return [(artifact["file"], cpu, record.get("emulated_as") or "native", str(record["samples"]),
             _number(record.get("top1_agreement"), ".2%"), _number(record.get("accuracy_delta"), "+.2f"),
             record.get("runtime") or "—", _result(record))
            for artifact in artifacts for cpu, record in (artifact.get("verified_on") or {}).items()]


def cpu_lines(artifacts):
    """The report.md section of the per-CPU verification ([] when no CPU kind was checked)."""
    rows = cpu_rows(artifacts)
    if not rows:
        return []
    return ["## Verified on CPUs", "", "Each file run on each CPU kind (`--check-cpu`; emulated kinds under QEMU user "
            "mode, on the first held-out samples) against the same reference and gate as on this host.", "",
            *_markdown_lines(CPU_COLUMNS, rows), ""]


def cpu_failure_lines(artifacts):
    """One line per artifact and CPU kind whose check failed, naming the CPU ([] when none failed).

    Example:
        >>> cpu_failure_lines([{"file": "m_int8.onnx", "verified_on": {"x86-avx2": {"emulated_as": "Haswell",
        ...     "failures": ["top-1 agreement 57.22% < 98.00%"], "passed": False}}}])
        ['m_int8.onnx: FAILED on x86-avx2 (emulated as Haswell): top-1 agreement 57.22% < 98.00%']
    """
    return [f"{artifact['file']}: FAILED on {cpu} (emulated as {record.get('emulated_as') or 'native'}): "
            f"{'; '.join(record['failures'])}"
            for artifact in artifacts for cpu, record in (artifact.get("verified_on") or {}).items()
            if not record["passed"]]


def cpu_table(artifacts):
    """A rich Table of `cpu_rows`, or None when no CPU kind was checked."""
    from rich.table import Table

    rows = cpu_rows(artifacts)
    if not rows:
        return None
    table = Table(title="verified on CPUs")
    for column in CPU_COLUMNS:
        table.add_column(column, no_wrap=column in ("artifact", "CPU"))
    for cells in rows:
        colour = "green" if cells[-1].startswith("PASS") else "red"
        table.add_row(*cells[:-1], f"[{colour}]{cells[-1]}[/{colour}]")
    return table


def build_report(manifest, reference, passed, wall_time_s, notes=(), step_seconds=None,
                 step_peaks=None):
    """The report.json document: artifacts with parity, reference facts, optimizations, target checks, the
    CPU the latencies were measured on (`export.core.cpu.cpu_facts`: model, machine, int8 ISA flags) and the
    profile of the run (`step_seconds`: wall seconds per step; `step_peaks`: the process's peak resident memory
    when each step ended, so the step that raised it shows; the peak of the whole run)."""
    from export.core.cpu import cpu_facts

    profile = {"step_seconds": {step: round(s, 2) for step, s in (step_seconds or {}).items()},
               "step_peak_rss_mb": dict(step_peaks or {}), "peak_rss_mb": peak_rss_mb()}
    return {"passed": passed, "wall_time_s": round(wall_time_s, 2), "profile": profile, "reference": reference,
            "machine": cpu_facts(),
            "artifacts": manifest["artifacts"], "optimizations": manifest.get("optimizations") or {},
            "target_checks": manifest.get("target_checks") or {}, "data": manifest.get("data"),
            "quantization": manifest.get("quantization") or {},
            "notes": list(notes)}


def fewer_samples_lines(artifacts, held_out):
    """A line naming the artifacts checked on fewer than the `held_out` samples (fp32: the gate's `max_samples`;
    the .keras round trip), so the reference line's count is not read as every row's ([] when none).

    Example:
        >>> fewer_samples_lines([{"file": "m_fp32.onnx", "parity": {"samples": 64}}], 360)
        ['Checked on fewer samples (gate `max_samples`, round trip): m_fp32.onnx 64.', '']
    """
    fewer = [f"{a['file']} {a['parity']['samples']}" for a in artifacts
             if held_out and (a.get("parity") or {}).get("samples", held_out) < held_out]
    return [f"Checked on fewer samples (gate `max_samples`, round trip): {', '.join(fewer)}.", ""] if fewer else []


def _markdown(report):
    reference = report["reference"]
    lines = [f"# Export report: {'PASSED' if report['passed'] else 'FAILED'}", "",
             f"Reference: {reference.get('description')}; accuracy {_number(reference.get('accuracy'), '.2%')}, "
             f"median batch-1 latency {_number(reference.get('latency_ms_median'), '.3f')} ms "
             f"({reference.get('samples')} held-out samples from {(report.get('data') or {}).get('source')}).", "",
             markdown_table(report["artifacts"], (report.get("optimizations") or {}).get("gate")), ""]
    lines += fewer_samples_lines(report["artifacts"], reference.get("samples"))
    lines += cpu_lines(report["artifacts"])
    lines += optimization_lines((report.get("optimizations") or {}).get("gate"))
    if has_several_outputs(report["artifacts"]):
        lines += ["## Outputs", "", "Every output against the reference output of the same name (class scores: "
                  "the classifier gate; features: the fp32 noise rule, else SQNR).", "",
                  *_markdown_lines(OUTPUT_DETAIL_COLUMNS, output_rows(report["artifacts"])), ""]
    for target_file, check in report["target_checks"].items():
        ops = ", ".join(f"{o['op']}×{o['count']}" for o in check["ops"])
        lines += [f"## Target {check['target']}: {target_file} — {'ok' if check['passed'] else 'PROBLEMS'}", "",
                  f"Ops: {ops}", ""] + [f"- {p}" for p in check["problems"]] + [""]
    lines += _quantization_lines(report.get("quantization") or {}, report["artifacts"])
    if report["optimizations"]:
        lines += ["## Optimizations", "", "```json", _json(report["optimizations"]), "```", ""]
    lines += [f"- {note}" for note in report["notes"]]
    lines += ["", f"Total export wall time: {report['wall_time_s']:.1f} s", *_profile_lines(report.get("profile"))]
    return "\n".join(lines) + "\n"


PROFILE_STEPS = 5  # slowest steps listed in report.md


def _profile_lines(profile):
    """report.md's profile: the slowest steps and the peak memory."""
    if not profile:
        return []
    slowest = sorted(profile["step_seconds"].items(), key=lambda item: -item[1])[:PROFILE_STEPS]
    steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in slowest)
    return [f"Slowest steps: {steps or '—'}; peak resident memory {_number(profile['peak_rss_mb'], '.0f')} MiB."]


def optimization_lines(gate):
    """report.md's lines about the optimization gate: what it compares, its failure and hint, or why it was
    not measured ([] without optimizations)."""
    from export.optimize.gate import failure_line

    if not gate:
        return []
    lines = [f"Optimization gate: held-out accuracy after each optimization step against the model as given "
             f"(original {_number(gate.get('original_accuracy'), '.2%')}), allowed drop {gate['max_drop_pts']:g} "
             "points; the acc Δ orig column gives each artifact's change against the original too."]
    if failure_line(gate):
        lines += [f"- FAILED: {failure_line(gate)}", f"- hint: {gate.get('hint')}"]
    if not gate.get("measured"):
        lines += [f"- NOT MEASURED: {gate.get('reason')}"]
    return lines + [""]


def _quantization_lines(quantization, artifacts):
    """report.md's quantization section: equalization, fallback policy, per-artifact output SQNR and worst layers."""
    rows = [(a["file"], _number(a["quantization"].get("output_sqnr_db"), ".1f"),
             ", ".join(f"{w['layer']} {_number(w['sqnr_db'], '.1f')}" for w in a["quantization"]["worst_layers"]),
             ", ".join((a["quantization"].get("fallback") or {}).get("float_layers") or []) or "—")
            for a in artifacts if a.get("quantization")]
    if not rows:
        return []
    equalization, fallback = quantization.get("equalization") or {}, quantization.get("fallback") or {}
    applied = (f"applied to {equalization.get('pairs')} Conv-BN-ReLU-Conv pairs" if equalization.get("applied")
               else f"not applied ({equalization.get('reason')})")
    policy = (f"on (up to {fallback.get('max_float_layers')} layers)" if fallback.get("enabled")
              else f"off ({fallback.get('reason')})")
    return ["## Quantization", "", f"Cross-layer equalization: {applied}. Float fallback: {policy}. Per-layer "
            "SQNR (each layer alone, dB) in quant_report.md / quant_report.json.", "",
            *_markdown_lines(("artifact", "output SQNR dB", "worst layers (SQNR dB)", "kept in float"), rows), ""]


def _json(document):
    import json

    return json.dumps(document, indent=2, default=str)


def write_reports(export_dir, report):
    """Write report.json and report.md into `export_dir`."""
    write_json(os.path.join(export_dir, REPORT_JSON), report)
    with open(os.path.join(export_dir, REPORT_MD), "w") as handle:
        handle.write(_markdown(report))


def summary_table(artifacts, title="export", gate=None):
    """A rich Table of the optimization steps (`gate`) and artifacts (what `reszoo export` / `reszoo verify`
    print at the end)."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns(artifacts):
        table.add_column(column, justify="right" if column not in ("artifact", "result", "format",
                                                                   "worst output") else "left",
                         no_wrap=column == "artifact")
    for cells in table_rows(artifacts, gate):
        cells = list(cells)
        cells[-1] = f"[green]{cells[-1]}[/green]" if cells[-1].startswith("PASS") else f"[red]{cells[-1]}[/red]"
        table.add_row(*cells)
    return table


class Steps:
    """A rich progress bar over named steps; `progress(description, completed, total)` for sub-steps.

    Example:
        >>> with Steps(2, enabled=False) as steps:
        ...     steps.start("convert tflite fp32"); steps.done()
    """

    def __init__(self, total, enabled=True, console=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.enabled = enabled
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=False, disable=not enabled)
        self.task = self.bar.add_task("export", total=total)
        self.sub = None
        self.seconds = {}  # step description -> wall seconds (summed when a description repeats)
        self.peaks = {}  # step description -> the process's peak RSS (MiB) when the step ended

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def start(self, description):
        """Show `description` as the current step."""
        self.bar.update(self.task, description=description)

    def done(self):
        """Count the current step as finished."""
        self.bar.advance(self.task)

    def progress(self, description, completed, total):
        """Callback for long sub-steps (fine-tuning batches): a second bar."""
        if self.sub is None:
            self.sub = self.bar.add_task(description, total=total)
        self.bar.update(self.sub, description=description, completed=completed, total=total)

    @contextlib.contextmanager
    def step(self, description):
        """Context manager: start `description`, count it done on exit."""
        self.start(description)
        started = time.perf_counter()
        yield
        release_memory()
        self.seconds[description] = self.seconds.get(description, 0.0) + time.perf_counter() - started
        self.peaks[description] = peak_rss_mb()
        self.done()
