"""Parity of an artifact on other CPU kinds: the host's gate, applied per CPU (`verified_on`).

The host verification (`export.verify`) runs every held-out sample; here each CPU kind (`export.cpus.kinds`)
runs the first `samples` of them through `export.cpus.run` (all of them natively; EMULATED_SAMPLES under QEMU,
where ResNet-20 int8 ran ~100x slower and heavy float work 300-500x) and is compared with the same reference,
gate and noise. A kind whose run fails (emulator or runtime crash) is a failed row of its own with the error,
not a user error.

Example:
    >>> check = checker(["arm64"])  # then check(path, "tflite", "int8", x, reference, labels, gates)
    >>> check("m.keras", "keras", "fp32", None, None, None, {})
    {}
"""
from export.cpus import kinds as cpu_kinds
from export.cpus.run import FORMATS, run_worker

EMULATED_SAMPLES = 120  # held-out samples per emulated CPU: the gate's 98 % then allows 2 flips
RECORDED_METRICS = ("samples", "top1_agreement", "accuracy", "accuracy_delta", "max_abs_err", "max_rel_err")


def checkable(fmt):
    """True when artifacts of `fmt` can run on another CPU kind (the runtimes the worker loads)."""
    return fmt in FORMATS


def sample_count(kind, gate, available, samples=EMULATED_SAMPLES):
    """Samples `kind` runs: the gate's count (`export.gates.checked_samples`), capped at `samples` when emulated."""
    from export.gates import checked_samples

    count = checked_samples(gate, available)
    return min(count, samples) if kind.emulator else count


def cpu_parity(kind, path, fmt, precision, x, reference, labels, gates, noise=0.0, samples=EMULATED_SAMPLES):
    """The parity record of the artifact at `path` on `kind`: the gate's metrics on its samples, the runtime
    and the CPU features the process saw, "failures" (each line as the host's) and "passed"."""
    from export.gates import check_gate, parity_metrics

    gate = dict(gates.get(precision, {}))
    count = sample_count(kind, gate, len(x), samples)
    record = {"cpu": kind.name, "emulated_as": kind.cpu_model, "stands_for": kind.stands_for}
    try:
        outputs, facts = run_worker(kind, path, fmt, x[:count])
    except RuntimeError as error:  # the emulator or runtime failed: a failed row, not the user's mistake
        return {**record, "samples": count, "error": str(error), "failures": [f"did not run ({error})".split("\n")[0]],
                "passed": False}
    metrics = parity_metrics(reference[:count], outputs, None if labels is None else labels[:count], noise, gate)
    failures = check_gate(metrics, precision, gates)
    return {**record, **{key: metrics[key] for key in RECORDED_METRICS if key in metrics},
            "runtime": facts.get("runtime"), "features": facts.get("features"), "wall_s": facts.get("wall_s"),
            "failures": failures, "passed": not failures}


def verify_on(kinds, path, fmt, precision, x, reference, labels, gates, noise=0.0, samples=EMULATED_SAMPLES):
    """{kind name: `cpu_parity` record} for every kind in `kinds` (`export.cpus.kinds.CpuKind` rows)."""
    return {kind.name: cpu_parity(kind, path, fmt, precision, x, reference, labels, gates, noise, samples)
            for kind in kinds}


def checker(names, samples=EMULATED_SAMPLES):
    """The per-CPU check of `names` (kinds or aliases) as `export.verify.verify_export_dir(other_cpus=...)` and the
    export pipeline call it: (path, format, precision, x, reference, labels, gates, noise) -> `verify_on`'s
    records, {} for a format that does not run outside TensorFlow."""
    kinds = cpu_kinds.expand(names)

    def check(path, fmt, precision, x, reference, labels, gates, noise=0.0):
        if not checkable(fmt):
            return {}
        return verify_on(kinds, path, fmt, precision, x, reference, labels, gates, noise, samples)

    return check


def check_ready(names):
    """The rows of the CPU kinds `names`, each ready here; UserError naming the first one that is not and how to
    install it (before any work starts)."""
    from export.core.errors import UserError

    rows = cpu_kinds.expand(names)
    for kind in rows:
        problem = cpu_kinds.missing(kind)
        if problem:
            raise UserError(problem)
    return rows
