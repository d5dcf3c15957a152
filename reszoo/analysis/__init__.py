"""Analysis commands' engines: benchmarks of export dirs and residual-learning diagnostics.

Each topic is split into measuring and reporting: `bench` (timing, roofline; reads the dir via `bench_export_dir`)
and `bench_report` (bench.md table, bench.png, atomic writes); `diagnose` (gradient-flow probes) and
`diagnose_report` (diagnose.json, diagnose.png, summary lines). The CLI modules only parse, call and print.

Example:
    >>> from reszoo.analysis.bench import bench_export_dir
    >>> from reszoo.analysis.diagnose import diagnose
"""
