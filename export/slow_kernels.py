"""Artifacts whose runtime runs them with slow CPU kernels: the formats table's `slow_kernels` reason and the
measured latency ratio to the fp32 file of the same format, for the manifest entry, the table and report.md.

The one decision of which rows are slow is the `slow_kernels` field of `export.formats.VARIANTS`; this module
only measures and words it.

Example:
    >>> artifacts = [{"format": "tflite", "precision": "fp32", "parity": {"latency_ms_median": 0.2}},
    ...              {"format": "tflite", "precision": "int16x8", "parity": {"latency_ms_median": 5.0}}]
    >>> annotate(artifacts)[1]["slow_kernels"]["latency_vs_fp32"]
    25.0
    >>> note(artifacts[1])[:45]
    'slow kernels (25.0x fp32 latency): int16x8 ru'
"""
from export.formats import variant


def reason(format_name, precision):
    """The table's slow-kernels reason of (format, precision), "" when the row is not marked."""
    return variant(format_name, precision).slow_kernels


def _latency(artifact):
    return (artifact.get("parity") or {}).get("latency_ms_median")


def latency_ratio(artifact, artifacts):
    """The artifact's median latency / that of the fp32 artifact of its format, None when either is missing."""
    fp32 = next((a for a in artifacts if (a["format"], a["precision"]) == (artifact["format"], "fp32")), None)
    mine, base = _latency(artifact), _latency(fp32) if fp32 else None
    return round(mine / base, 2) if mine and base else None


def annotate(artifacts):
    """Add {"reason", "latency_vs_fp32"} as "slow_kernels" to every marked artifact entry (in place); returns them."""
    for artifact in artifacts:
        why = reason(artifact["format"], artifact["precision"])
        if why:
            artifact["slow_kernels"] = {"reason": why, "latency_vs_fp32": latency_ratio(artifact, artifacts)}
    return artifacts


def note(artifact):
    """The table's words for a marked artifact ("" when not marked)."""
    facts = artifact.get("slow_kernels")
    if not facts:
        return ""
    ratio = facts.get("latency_vs_fp32")
    measured = f" ({ratio:.1f}x fp32 latency)" if ratio else ""
    return f"slow kernels{measured}: {facts['reason']}"
