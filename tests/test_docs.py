"""The documentation is checked like code: README.md and every docs/*.md page.

- every relative markdown link (and image) resolves: the file exists, and a `#anchor` is a heading of that file
  (GitHub's slug rules);
- every docs page is linked from README.md, and README.md stays at most `README_MAX_LINES` lines;
- every repository path (`reszoo/...`, `tools/...`) and dotted module name (`export.formats.VARIANTS`) named in
  inline code exists, read statically (nothing is imported);
- every ```python block runs, each in a fresh interpreter (`sys.executable`) in an empty temp dir that has the
  shipped `saved_models/` linked in, with the repository root on PYTHONPATH. A block preceded by the line
  `<!-- slow -->` is marked slow (`make test-slow`); one preceded by `<!-- network -->` downloads weights and
  runs only when RESZOO_DOCS_NETWORK=1;
- every `reszoo ...` command line in a ```bash / ```sh / ```console block is parsed by the real click command
  (option names, arity, choices and number types; files are not opened), one test case per line.
"""
import ast
import os
import pathlib
import re
import shlex
import subprocess
import sys

import click
import pytest

try:  # click >= 8.2 marks a parameter the parser did not see with a sentinel, not None
    from click._utils import UNSET
except ImportError:  # pragma: no cover - older click
    UNSET = None

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
DOC_FILES = [README, *DOC_PAGES]
README_MAX_LINES = 300
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
MARKERS = {"<!-- slow -->": "slow", "<!-- network -->": "network"}
BLOCK_TIMEOUT_S = {"slow": 3600, "network": 3600}  # blocks run in their own interpreter (fast ones run here)
LINKED_INTO_BLOCK_DIR = ("saved_models",)  # shipped files the examples read by their repository path
REPO_TOP_DIRS = ("reszoo", "export", "tests", "tools", "saved_models", "docs")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _rel(path):
    return path.relative_to(ROOT).as_posix() if ROOT in path.parents else str(path)


def _read(path):
    return path.read_text(encoding="utf-8").splitlines()


def fenced_blocks(path):
    """[(first code line number, language, marker or None, code)] of every fenced block in `path`."""
    lines, blocks, index = _read(path), [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        previous = next((lines[j].strip() for j in range(index - 1, -1, -1) if lines[j].strip()), "")
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{_rel(path)}:{index + 1}: code fence never closed")
        blocks.append((index + 2, language, MARKERS.get(previous), "\n".join(lines[index + 1:end]) + "\n"))
        index = end + 1
    return blocks


def prose_lines(path):
    """[(line number, line)] of the lines outside fenced blocks (fence lines included in neither)."""
    inside, fence, result = False, None, []
    for number, line in enumerate(_read(path), 1):
        opening = FENCE.match(line)
        if not inside and opening:
            inside, fence = True, opening.group(1)
        elif inside and line.strip().startswith(fence):
            inside = False
        elif not inside:
            result.append((number, line))
    return result


def code_spans(path):
    """[(line number, text)] of every inline code span outside fenced blocks."""
    return [(number, match.group(2).strip()) for number, line in prose_lines(path)
            for match in CODE_SPAN.finditer(line)]


def github_slug(text):
    """The anchor GitHub gives a heading: markup dropped, lowercase, punctuation except '-' and '_' removed,
    each space a '-'.

    Example:
        >>> github_slug("Verified on which CPUs (`--check-cpu`, `reszoo verify --cpu`)")
        'verified-on-which-cpus---check-cpu-reszoo-verify---cpu'
        >>> github_slug("ResNet-50, 224×224, batch 1, this box")
        'resnet-50-224224-batch-1-this-box'
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def heading_anchors(path):
    """Every anchor of `path`'s headings, duplicates numbered -1, -2, ... as GitHub does."""
    anchors, seen = set(), {}
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def relative_links(path):
    """[(line number, target)] of every link and image in `path` that is not a URL; link text may span lines,
    links inside code (fenced or inline) do not count."""
    lines = [""] * len(_read(path))
    for number, line in prose_lines(path):
        lines[number - 1] = CODE_SPAN.sub("", line)
    text, links = "\n".join(lines), []
    for match in LINK.finditer(text):
        target = match.group(1)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:, ...
            links.append((text.count("\n", 0, match.start()) + 1, target))
    return links


def link_problem(source, target):
    """Why `target` (a link in file `source`) does not resolve, or None."""
    file_part, _, anchor = target.partition("#")
    destination = (source.parent / file_part).resolve() if file_part else source
    if not destination.exists():
        return f"{file_part} does not exist"
    if ROOT in source.parents and ROOT not in destination.parents and destination != ROOT:
        return f"{file_part} is outside the repository"
    if anchor:
        if destination.suffix != ".md":
            return f"#{anchor} points into {file_part}, which is not a markdown file"
        if anchor not in heading_anchors(destination):
            return f"no heading with anchor #{anchor} in {_rel(destination)}"
    return None


# --- links, the README's size and the docs index -------------------------------------------------------------------

LINK_CASES = [pytest.param(path, number, target, id=f"{_rel(path)}:{number}:{target}")
              for path in DOC_FILES for number, target in relative_links(path)]


@pytest.mark.parametrize(("path", "line", "target"), LINK_CASES)
def test_relative_link_resolves(path, line, target):
    problem = link_problem(path, target)
    assert problem is None, f"{_rel(path)}:{line}: link ({target}): {problem}"


def test_docs_exist_and_links_were_found():
    assert len(DOC_PAGES) >= 8, "docs/ pages are missing"
    assert len(LINK_CASES) >= len(DOC_PAGES), "the link scanner found (almost) no links"


def test_link_checker_rejects_broken_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A heading (`x`)\n\n```text\n# not a heading\n```\n")
    assert link_problem(page, "#a-heading-x") is None
    assert link_problem(page, "#not-a-heading") is not None
    assert link_problem(page, "#a-heading-y") is not None
    assert link_problem(page, "missing.md") is not None
    assert link_problem(README, "docs/no-such-page.md") is not None


@pytest.mark.parametrize("page", DOC_PAGES, ids=[_rel(page) for page in DOC_PAGES])
def test_every_docs_page_is_linked_from_the_readme(page):
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in relative_links(README)}
    assert page.resolve() in linked, f"README.md does not link {_rel(page)}"


def test_readme_is_short():
    count = len(_read(README))
    assert count <= README_MAX_LINES, f"README.md has {count} lines (at most {README_MAX_LINES}); move detail to docs/"


# --- repository paths and module names named in inline code ---------------------------------------------------------

PATH_SPAN = re.compile(rf"^(?:{'|'.join(REPO_TOP_DIRS)})/[\w./*-]*$")
DOTTED_SPAN = re.compile(r"^((?:reszoo|export)(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?$")


def _span_cases(pattern):
    return [pytest.param(path, number, text, id=f"{_rel(path)}:{number}:{text}")
            for path in DOC_FILES for number, text in code_spans(path) if pattern.match(text)]


PATH_CASES = _span_cases(PATH_SPAN)
DOTTED_CASES = _span_cases(DOTTED_SPAN)


@pytest.mark.parametrize(("path", "line", "text"), PATH_CASES)
def test_named_repository_path_exists(path, line, text):
    name = text.rstrip("/")
    if "*" in name:
        found = list(ROOT.glob(name))
    else:
        found = [ROOT / name] if (ROOT / name).exists() else []
    assert found, f"{_rel(path)}:{line}: `{text}` does not exist in the repository"


def _top_level_names(module_path):
    """Names a module defines or imports at top level, and whether it has a module `__getattr__` (lazy names)."""
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    names, strings = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.If, ast.Try)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.FunctionDef, ast.ClassDef)):
                    names.add(inner.name)
                elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
    lazy = strings if "__getattr__" in names else set()
    return names | lazy


def dotted_name_problem(dotted):
    """Why `dotted` (package.module[.attribute...]) does not name a module or a top-level name, or None.

    Example:
        >>> dotted_name_problem("export.formats.VARIANTS") is None, dotted_name_problem("export.no_such") is None
        (True, False)
    """
    parts = dotted.split(".")
    package, module_file = ROOT / parts[0], ROOT / parts[0] / "__init__.py"
    for index, part in enumerate(parts[1:], 1):
        if (package / part / "__init__.py").exists():  # a sub-package: keep walking
            package, module_file = package / part, package / part / "__init__.py"
            continue
        if (package / f"{part}.py").exists():  # a module: its next part (if any) must be a top-level name
            if index + 1 < len(parts) and parts[index + 1] not in _top_level_names(package / f"{part}.py"):
                return f"{'.'.join(parts[:index + 1])} has no top-level name {parts[index + 1]!r}"
            return None
        if part not in _top_level_names(module_file):  # a name of the package itself
            return f"{'.'.join(parts[:index])} has no module or top-level name {part!r}"
        return None
    return None


@pytest.mark.parametrize(("path", "line", "text"), DOTTED_CASES)
def test_named_module_or_attribute_exists(path, line, text):
    problem = dotted_name_problem(DOTTED_SPAN.match(text).group(1))
    assert problem is None, f"{_rel(path)}:{line}: `{text}`: {problem}"


def test_inline_code_checks_found_names():
    assert len(PATH_CASES) >= 10 and len(DOTTED_CASES) >= 10, "the inline-code scanner found (almost) nothing"
    assert dotted_name_problem("export.verify.no_such_name") is not None
    assert dotted_name_problem("reszoo.create_model") is None  # a lazy name of reszoo/__init__.py


def where_things_are_names():
    """[(line, folder, name)] of the identifiers the README's "Where things are" table names for each folder."""
    cases, in_section = [], False
    for number, line in prose_lines(README):
        if line.startswith("## "):
            in_section = github_slug(line[3:]) == "where-things-are"
        if not in_section or not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|", 1)]
        folder = cells[0].strip("`").rstrip("/")
        for match in CODE_SPAN.finditer(cells[1] if len(cells) > 1 else ""):
            name = match.group(2).strip().rstrip("/")
            if re.fullmatch(r"[A-Za-z_]\w*", name):
                cases.append((number, folder, name))
    return cases


def _defined_under(folder, name):
    """True when `name` is a module, a folder or a top-level name of a module under `folder`."""
    base = ROOT / folder
    if (base / f"{name}.py").exists() or (base / name).is_dir():
        return True
    return any(name in _top_level_names(path) for path in base.rglob("*.py") if "__pycache__" not in path.parts)


WHERE_CASES = [pytest.param(number, folder, name, id=f"README.md:{number}:{folder}:{name}")
               for number, folder, name in where_things_are_names()]


@pytest.mark.parametrize(("line", "folder", "name"), WHERE_CASES)
def test_where_things_are_names_exist(line, folder, name):
    assert _defined_under(folder, name), \
        f"README.md:{line}: the row for {folder}/ names `{name}`, which is no module or name under {folder}/"


def test_where_things_are_table_was_read():
    assert len(WHERE_CASES) >= 30, "the README's 'Where things are' table was not found or has changed shape"
    assert _defined_under("export/core", "UserError") and not _defined_under("reszoo/models", "no_such_module")


# --- python blocks run ----------------------------------------------------------------------------------------------

def _python_cases():
    cases = []
    for path in DOC_FILES:
        for line, language, marker, code in fenced_blocks(path):
            if language not in ("python", "py", "python3"):
                continue
            marks = [pytest.mark.slow] if marker == "slow" else []
            cases.append(pytest.param(path, line, marker or "fast", code, marks=marks, id=f"{_rel(path)}:{line}"))
    return cases


PYTHON_CASES = _python_cases()


def _run_here(script, monkeypatch):
    """A fast block runs in this process (TensorFlow is already started here: ~10 s saved per block), from its
    folder, as `python block.py` would run it; an exception fails the test with its traceback."""
    import matplotlib
    import runpy

    matplotlib.use("Agg")
    monkeypatch.chdir(script.parent)
    monkeypatch.syspath_prepend(str(script.parent))
    runpy.run_path(str(script), run_name="__main__")


def _run_in_subprocess(script, path, line, kind):
    """A long block runs in its own interpreter, under the kind's time limit."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
    try:
        done = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT_S[kind])
    except subprocess.TimeoutExpired:
        pytest.fail(f"{_rel(path)}:{line}: the block ran over {BLOCK_TIMEOUT_S[kind]} s")
    assert done.returncode == 0, (f"{_rel(path)}:{line}: the python block failed (exit {done.returncode}):\n"
                                  f"{done.stderr[-4000:]}\n{done.stdout[-2000:]}")


@pytest.mark.parametrize(("path", "line", "kind", "code"), PYTHON_CASES)
def test_python_block_runs(path, line, kind, code, tmp_path, monkeypatch):
    if kind == "network" and os.environ.get("RESZOO_DOCS_NETWORK") != "1":
        pytest.skip("downloads weights; run with RESZOO_DOCS_NETWORK=1")
    for name in LINKED_INTO_BLOCK_DIR:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    script = tmp_path / f"block_{path.stem}_{line}.py"
    script.write_text(code, encoding="utf-8")
    if kind == "fast":
        _run_here(script, monkeypatch)
    else:
        _run_in_subprocess(script, path, line, kind)


def test_python_blocks_were_found():
    assert any(case.values[0] == README for case in PYTHON_CASES), "README.md has no python example"
    assert len(PYTHON_CASES) >= 5


# --- reszoo command lines parse ----------------------------------------------------------------------------------

def shell_commands(path):
    """[(line number, text)] of every `reszoo ...` command in the shell blocks of `path`: continuation lines
    joined, comments dropped, leading VAR=value assignments and a `$ ` prompt skipped."""
    commands = []
    for first_line, language, _, code in fenced_blocks(path):
        if language not in SHELL_LANGUAGES:
            continue
        pending, start = "", None
        for offset, raw in enumerate(code.splitlines()):
            line = raw.rstrip()
            if language == "console" and not pending:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if start is None:
                start = first_line + offset
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            text, pending, number, start = pending + line, "", start, None
            words = _words(text)
            if words and os.path.basename(words[0]) == "reszoo":
                commands.append((number, text.strip()))
    return commands


def _words(text):
    words = shlex.split(text, comments=True)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    return words


def _root_group():
    from reszoo.cli import cli

    return cli


def _check_values(command, ctx, values):
    """Convert each given value with its parameter's type (choices, numbers); paths and files are not opened."""
    for param in command.get_params(ctx):
        value = values.get(param.name)
        if value is None or value is UNSET or isinstance(param.type, (click.Path, click.File)):
            continue
        items = value if (param.multiple or param.nargs != 1) and isinstance(value, (list, tuple)) else [value]
        for item in items:
            for single in item if isinstance(item, (list, tuple)) else [item]:
                if isinstance(param, click.Option) and param.is_flag and not isinstance(single, str):
                    continue
                param.type.convert(single, param, ctx)


def parse_command_line(args):
    """Parse `reszoo ARGS...` as the CLI would, without running it; raise click.UsageError (or BadParameter)
    for an unknown command or option, a missing or surplus value, a bad choice or number, or a missing argument."""
    command, ctx, args = _root_group(), None, list(args)
    name = "reszoo"
    while True:
        ctx = click.Context(command, info_name=name, parent=ctx, resilient_parsing=False)
        if "--help" in args or "-h" in args:
            return command
        values, rest, _ = command.make_parser(ctx).parse_args(args)
        _check_values(command, ctx, values)
        for param in command.get_params(ctx):
            if param.required and (values.get(param.name) is UNSET or values.get(param.name) in (None, ())):
                raise click.MissingParameter(ctx=ctx, param=param)
        if isinstance(command, click.Group):
            if not rest:
                if command.invoke_without_command:
                    return command
                raise click.UsageError(f"{name}: missing command", ctx=ctx)
            sub = command.get_command(ctx, rest[0])
            if sub is None:
                raise click.UsageError(f"no such command {rest[0]!r} under {name!r}", ctx=ctx)
            command, name, args = sub, rest[0], rest[1:]
            continue
        if rest:
            raise click.UsageError(f"unexpected extra argument(s) {rest}", ctx=ctx)
        return command


COMMAND_CASES = [pytest.param(path, number, text, id=f"{_rel(path)}:{number}")
                 for path in DOC_FILES for number, text in shell_commands(path)]


@pytest.mark.parametrize(("path", "line", "text"), COMMAND_CASES)
def test_reszoo_command_line_parses(path, line, text):
    try:
        parse_command_line(_words(text)[1:])
    except click.ClickException as error:
        pytest.fail(f"{_rel(path)}:{line}: `{text}`: {error.format_message()}")


def test_command_lines_were_found():
    assert any(case.values[0] == README for case in COMMAND_CASES), "README.md shows no reszoo command"
    assert len(COMMAND_CASES) >= 20


@pytest.mark.parametrize("args", [
    ["export", "x.keras", "--no-such-option"],
    ["export", "x.keras", "--format", "tflit"],
    ["export", "x.keras", "--format"],
    ["export", "x.keras", "--calibration-samples", "many"],
    ["no-such-command"],
    ["info"],
    ["cpus", "uninstall"],
    ["data"],
    ["list", "resnet*", "extra"],
])
def test_command_parser_rejects_what_the_cli_rejects(args):
    with pytest.raises(click.ClickException):
        parse_command_line(args)


def test_command_parser_accepts_a_real_line():
    assert parse_command_line(["export", "x.keras", "--format", "tflite", "--precision", "int8", "--force"]).name == \
        "export"
    assert parse_command_line(["cpus", "install"]).name == "install"
