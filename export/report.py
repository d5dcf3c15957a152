"""report.json, report.md and the rich summary table of an export run; the rich progress bar over its steps.

Example:
    >>> row = {"file": "m_int8.tflite", "format": "tflite", "precision": "int8", "size_bytes": 2048,
    ...        "parity": {"max_abs_err": 0.01, "top1_agreement": 0.99, "passed": True, "failures": []}}
    >>> markdown_table([row]).splitlines()[2].startswith("| m_int8.tflite | tflite | int8 | 2.0 KiB")
    True
"""
import contextlib
import os

from export.manifest import write_json

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
COLUMNS = ("artifact", "format", "precision", "size", "gzip", "max abs err", "top-1 agree", "acc Δ (pts)",
           "latency ms", "result")


def human_size(size):
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0


def _number(value, pattern):
    return "—" if value is None else format(value, pattern)


def row_cells(artifact):
    """The table cells of one artifact entry (manifest entry with "parity")."""
    parity = artifact.get("parity") or {}
    result = "PASS" if parity.get("passed") else "FAIL: " + "; ".join(parity.get("failures") or ["not verified"])
    return (artifact["file"], artifact["format"], artifact["precision"], human_size(artifact.get("size_bytes", 0)),
            human_size(artifact.get("gzip_size_bytes", 0)), _number(parity.get("max_abs_err"), ".2e"),
            _number(parity.get("top1_agreement"), ".2%"), _number(parity.get("accuracy_delta"), "+.2f"),
            _number(parity.get("latency_ms_median"), ".3f"), result)


def markdown_table(artifacts):
    """A markdown table with one row per artifact."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row_cells(a)) + " |" for a in artifacts]
    return "\n".join(lines)


def build_report(manifest, reference, passed, wall_time_s, notes=()):
    """The report.json document: artifacts with parity, reference facts, optimizations, target checks, and the
    CPU the latencies were measured on (`export.core.cpu.cpu_facts`: model, machine, int8 ISA flags)."""
    from export.core.cpu import cpu_facts

    return {"passed": passed, "wall_time_s": round(wall_time_s, 2), "reference": reference, "machine": cpu_facts(),
            "artifacts": manifest["artifacts"], "optimizations": manifest.get("optimizations") or {},
            "target_checks": manifest.get("target_checks") or {}, "data": manifest.get("data"),
            "notes": list(notes)}


def _markdown(report):
    reference = report["reference"]
    lines = [f"# Export report: {'PASSED' if report['passed'] else 'FAILED'}", "",
             f"Reference: {reference.get('description')}; accuracy {_number(reference.get('accuracy'), '.2%')}, "
             f"median batch-1 latency {_number(reference.get('latency_ms_median'), '.3f')} ms "
             f"({reference.get('samples')} held-out samples from {(report.get('data') or {}).get('source')}).", "",
             markdown_table(report["artifacts"]), ""]
    for target_file, check in report["target_checks"].items():
        ops = ", ".join(f"{o['op']}×{o['count']}" for o in check["ops"])
        lines += [f"## Target {check['target']}: {target_file} — {'ok' if check['passed'] else 'PROBLEMS'}", "",
                  f"Ops: {ops}", ""] + [f"- {p}" for p in check["problems"]] + [""]
    if report["optimizations"]:
        lines += ["## Optimizations", "", "```json", _json(report["optimizations"]), "```", ""]
    lines += [f"- {note}" for note in report["notes"]]
    lines += [f"", f"Total export wall time: {report['wall_time_s']:.1f} s"]
    return "\n".join(lines) + "\n"


def _json(document):
    import json

    return json.dumps(document, indent=2, default=str)


def write_reports(export_dir, report):
    """Write report.json and report.md into `export_dir`."""
    write_json(os.path.join(export_dir, REPORT_JSON), report)
    with open(os.path.join(export_dir, REPORT_MD), "w") as handle:
        handle.write(_markdown(report))


def summary_table(artifacts, title="export"):
    """A rich Table of the artifacts (what `reszoo export` / `reszoo verify` print at the end)."""
    from rich.table import Table

    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="right" if column not in ("artifact", "result", "format") else "left",
                         no_wrap=column == "artifact")
    for artifact in artifacts:
        cells = list(row_cells(artifact))
        cells[-1] = "[green]PASS[/green]" if cells[-1] == "PASS" else f"[red]{cells[-1]}[/red]"
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
        yield
        self.done()
