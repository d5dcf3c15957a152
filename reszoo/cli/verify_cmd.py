"""`reszoo verify DIR`: re-check an export dir — sha256 of every artifact, then parity in its own runtime.

Exit 0 when every artifact matches manifest.json and passes its gate, 1 when a file was modified or missing
or a gate failed, 2 for user errors (no such dir, no manifest, bad --data).

Example:
    $ reszoo verify exports/resnet20_digits --data digits
"""
import click


@click.command("verify")
@click.argument("export_dir")
@click.option("--data", default=None, help="Verification data [the manifest's data source].")
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--gate", "gates", multiple=True, help="Override a parity gate: PRECISION.KEY=VALUE.")
@click.option("--verify-samples", type=click.IntRange(1), default=None, help="Cap on held-out samples [all].")
@click.option("--latency-runs", type=click.IntRange(0), default=10, show_default=True)
def verify_command(export_dir, data, threads, gates, verify_samples, latency_runs):
    """Verify the artifacts of EXPORT_DIR against manifest.json and the Keras reference."""
    from export.manifest import read_manifest
    from export.verify import verify_export_dir

    read_manifest(export_dir)  # one-line user error for a missing dir/manifest, before TensorFlow loads
    import reszoo.models  # noqa: F401  (registers reszoo's custom layers for the .keras reference)
    from reszoo.cli.export_cmd import print_outcome

    result = verify_export_dir(export_dir, data=data, gates=list(gates), threads=threads, samples=verify_samples,
                               latency_runs=latency_runs)
    if result["integrity_problems"]:
        for problem in result["integrity_problems"]:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"verify: {export_dir} FAILED integrity check (sha256 vs manifest.json)", err=True)
        raise SystemExit(1)
    sizes = {a["file"]: a for a in read_manifest(export_dir)["artifacts"]}
    rows = [{**sizes[a["file"]], "parity": a["parity"]} for a in result["artifacts"]]
    print_outcome({"artifacts": rows}, export_dir, f"verify: {export_dir} (data {result['data']})")
    raise SystemExit(0 if result["passed"] else 1)
