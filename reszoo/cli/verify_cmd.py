"""`reszoo verify DIR`: re-check an export dir — sha256 of every artifact, then parity in its own runtime.

DIR is not trusted. Every manifest path must resolve inside DIR (else one-line error, exit 2); every sha256
(artifacts, and the external reference `.keras` against `source_model.sha256`) is checked before anything
runs. TFLite, ONNX and `.keras` (safe mode) artifacts run; SavedModel artifacts are only hash-checked and
listed as "not run" unless `--trust` is given, since their graphs can run arbitrary TF ops (a SavedModel
reference without `--trust` is a user error, exit 2).

Exit 0 when integrity holds, at least one artifact ran and every artifact that ran passed its gate (artifacts
not run are listed on stderr: exit 0 does not vouch for them); 1 when a file was modified or missing, the
reference changed, a gate failed, or nothing could be run; 2 for user errors (no such dir, no manifest, a path
outside DIR, bad --data, a SavedModel reference without --trust).

Example:
    $ reszoo verify exports/resnet20_digits --data digits
    $ reszoo verify exports/resnet20_digits --trust   # also run SavedModel artifacts (you trust their author)
    $ reszoo verify exports/resnet20_digits --cpu arm64 --cpu x86-avx2   # also on emulated CPUs
"""
import click


def fail_integrity(export_dir, problems):
    """One stderr line per integrity problem plus the verdict, then exit 1."""
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"verify: {export_dir} FAILED integrity check (sha256 vs manifest.json)", err=True)
    raise SystemExit(1)


def report_not_run(export_dir, not_run, ran_any):
    """One stderr line per artifact left unrun (sha256 checked only); exit 1 when nothing ran at all."""
    for entry in not_run:
        click.echo(f"warning: {entry['file']}: sha256 ok, {entry['reason']}", err=True)
    if not ran_any:
        click.echo(f"verify: {export_dir} NOT VERIFIED: no artifact was run", err=True)
        raise SystemExit(1)


@click.command("verify")
@click.argument("export_dir")
@click.option("--data", default=None, help="Verification data [the manifest's data source].")
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--gate", "gates", multiple=True, help="Override a parity gate: PRECISION.KEY=VALUE.")
@click.option("--verify-samples", type=click.IntRange(1), default=None, help="Cap on held-out samples [all].")
@click.option("--latency-runs", type=click.IntRange(0), default=10, show_default=True)
@click.option("--cpu", "cpus", multiple=True, metavar="KIND", help="Also run TFLite/ONNX files on this CPU kind, "
              "emulated with QEMU (repeatable; `reszoo cpus` lists them, `reszoo cpus install` sets them up).")
@click.option("--trust", is_flag=True, help="Also run SavedModel artifacts/reference: their graphs can run "
              "arbitrary TF ops (write files, ...), so only for dirs whose author you trust.")
def verify_command(export_dir, data, threads, gates, verify_samples, latency_runs, cpus, trust):
    """Verify the artifacts of EXPORT_DIR against manifest.json and the Keras reference."""
    from export.manifest import read_manifest
    from export.verify import verify_export_dir

    from export.cpus.verify import check_ready, checker

    read_manifest(export_dir)  # one-line user error for a missing dir/manifest, before TensorFlow loads
    check_ready(cpus)  # each kind ready here, before any work
    from reszoo.cli.export_cmd import print_outcome

    result = verify_export_dir(export_dir, data=data, gates=list(gates), threads=threads, samples=verify_samples,
                               latency_runs=latency_runs, trust=trust,
                               other_cpus=checker(cpus) if cpus else None)
    if result["integrity_problems"]:
        fail_integrity(export_dir, result["integrity_problems"])
    report_not_run(export_dir, result["not_run"], bool(result["artifacts"]))
    sizes = {a["file"]: a for a in read_manifest(export_dir)["artifacts"]}
    rows = [{**sizes[a["file"]], "verified_on": {}, **a} for a in result["artifacts"]]  # this run's CPUs only
    print_outcome({"artifacts": rows}, export_dir, f"verify: {export_dir} (data {result['data']})")
    if result["not_run"]:
        skipped = ", ".join(entry["file"] for entry in result["not_run"])
        click.echo(f"not run, sha256 checked only (pass --trust to run them): {skipped}")
    raise SystemExit(0 if result["passed"] else 1)
