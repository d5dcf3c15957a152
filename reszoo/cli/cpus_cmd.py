"""`reszoo cpus`: the CPU kinds exports can be verified on (`export.cpus`); `reszoo cpus install` sets them up.

`reszoo cpus` lists every kind: what it stands for, the QEMU model it is emulated as, ready or what it still
needs, and the runtime versions it runs. `reszoo cpus install` installs QEMU user mode and debootstrap (apt,
root), an arm64 Debian root and aarch64 wheels into the cache folder; it is idempotent (done steps are skipped)
and shows a progress bar; third-party output goes to the cache folder's install.log. A failing step exits 1
naming the step and the log.

Example:
    $ reszoo cpus install
    $ reszoo cpus
    $ reszoo export --precision int8 --check-cpu arm64 --check-cpu x86-avx2
"""
import click


@click.group("cpus", invoke_without_command=True)
@click.pass_context
def cpus_command(context):
    """List the CPU kinds exports can be verified on (`install` sets up the emulated ones)."""
    if context.invoked_subcommand is None:
        print_status()


def print_status():
    """One table row per CPU kind (`export.cpus.install.status`)."""
    from rich.console import Console
    from rich.table import Table

    from export.cpus.install import status
    from export.cpus.kinds import ALIASES, cache_dir

    table = Table(title=f"CPU kinds (cache: {cache_dir()})")
    for column in ("kind", "stands for", "emulated as", "status", "runtimes"):
        table.add_column(column, no_wrap=column == "kind")
    for row in status():
        runtimes = ", ".join(f"{name} {version}" for name, version in (row.get("runtimes") or {}).items() if version)
        ready = "[green]ready[/green]" if row["ready"] else f"[red]{row['missing']}[/red]"
        table.add_row(row["name"], row["stands_for"], row["cpu_model"] or "native", ready, runtimes or "—")
    console = Console()
    console = console if console.is_terminal else Console(width=200)
    console.print(table)
    for alias, names in ALIASES.items():
        console.print(f"{alias} = {' + '.join(names)}", markup=False, highlight=False)


@cpus_command.command("install")
def install_command():
    """Install the emulators, the arm64 root and the aarch64 runtimes (idempotent)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from export.cpus.install import InstallError, install

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("cpus install", total=None)

        def progress(step, done, total):
            bar.update(task, description=step, completed=done, total=total)

        try:
            install(progress=progress)
        except InstallError as error:  # a tool failed, not the user: exit 1, details in the log
            bar.stop()
            click.echo(f"error: {error}", err=True)
            raise SystemExit(1) from None
    print_status()
