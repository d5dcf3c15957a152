"""Layering rules of the import graph, read statically (ast) from every .py under export/ and reszoo/.

Every `import`/`from ... import` counts, also those inside functions; "top level" means not inside a
function body (module, class and if/try blocks run at import time). Nothing is imported, so these tests
take no TensorFlow start-up and see modules that would fail to import.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("export", "reszoo")
FAMILY_MODULES = {f"reszoo.models.{name}" for name in ("cifar", "resnet", "resnet_v2", "densenet")}
REGISTRY = "reszoo.models.registry"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _scan():
    """{module: (is_package, path)} for every .py file under PACKAGES."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = (path.name == "__init__.py", path)
    return found


MODULES = _scan()


class _Collector(ast.NodeVisitor):
    """Import records (target module, line, top_level) of one module's tree."""

    def __init__(self, module, is_package):
        self.module, self.is_package = module, is_package
        self.depth = 0
        self.records = []

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, target, node):
        self.records.append((target, node.lineno, self.depth == 0))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node):
        base = node.module or ""
        if node.level:
            package = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            # `from pkg import sub` imports the submodule pkg.sub when there is one; else a name from pkg
            self._add(submodule if submodule in MODULES else base, node)


def _imports():
    """{module: [(target, line, top_level)]} for every scanned module."""
    graph = {}
    for module, (is_package, path) in MODULES.items():
        collector = _Collector(module, is_package)
        collector.visit(ast.parse(path.read_text(), filename=str(path)))
        graph[module] = collector.records
    return graph


IMPORTS = _imports()


def _under(target, prefix):
    return target == prefix or target.startswith(prefix + ".")


def _where(module, line, target):
    return f"{MODULES[module][1].relative_to(ROOT)}:{line}: {module} imports {target}"


def _violations(modules, forbidden):
    """'file:line: module imports target' for each import of `modules` for which forbidden(target, top_level)."""
    return [_where(module, line, target) for module in modules for target, line, top_level in IMPORTS[module]
            if forbidden(target, top_level)]


def test_scan_sees_the_tree():
    """The scanner found both packages and their imports (guards against the other tests passing vacuously)."""
    assert {"export", "export.core.errors", "export.runtimes", "reszoo", REGISTRY, "reszoo.cli"} <= set(MODULES)
    assert any(target == "export.core.errors" for target, _, _ in IMPORTS["export.runtimes"])
    # the lazy in-function import in KerasRunner.__init__ is seen, and not as top level
    assert ("export.core.metadata", False) in {(t, top) for t, _, top in IMPORTS["export.runtimes"]}


def test_export_never_imports_reszoo():
    """(a) export is the base library: nothing under export/ imports reszoo, at any level."""
    modules = [m for m in MODULES if _under(m, "export")]
    assert not _violations(modules, lambda target, _: _under(target, "reszoo"))


def test_export_core_is_the_floor():
    """(b) export.core imports nothing of export outside export.core, and no TensorFlow/Keras at top level."""
    modules = [m for m in MODULES if _under(m, "export.core")]
    assert modules
    outside = _violations(modules, lambda t, _: _under(t, "export") and not _under(t, "export.core"))
    heavy = _violations(modules, lambda t, top: top and any(_under(t, h) for h in ("tensorflow", "keras", "tf_keras")))
    assert not outside + heavy


def test_registry_imports_no_family():
    """(c) the registry is a leaf: it imports no family module (cifar, resnet, resnet_v2, densenet), at any level."""
    assert not _violations([REGISTRY], lambda target, _: any(_under(target, f) for f in FAMILY_MODULES))


def test_registry_imports_only_errors_core_and_flops():
    """(c) of reszoo and export the registry imports only reszoo.errors, export.core, the FLOP counter and the
    feature records (leaves over keras layers, used by `model_info`), at any level: pretrained weight tags are
    the factory's (`reszoo.models.factory`), above the registry."""
    allowed = ("reszoo.errors", "export.core", "reszoo.models.flops", "reszoo.models.features")

    def forbidden(target, _):
        ours = _under(target, "reszoo") or _under(target, "export")
        return ours and not any(_under(target, name) for name in allowed)

    assert not _violations([REGISTRY], forbidden)


def _edges(imports, modules):
    """{module: {imported module of `modules`: line}} for every import in `imports` ({module: records}), at any
    level: an import inside a function closes a circle as surely as one at the top, only later."""
    edges = {m: {} for m in imports}
    for module, records in imports.items():
        for target, line, _ in records:
            if target in modules and target != module:
                edges[module].setdefault(target, line)
    return edges


def _cycles(edges):
    """One shortest cycle [a, b, ..., a] per strongly connected component (of more than one module) of `edges`."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:  # one concrete cycle inside each component, with the import lines
        start, members = component[0], set(component)
        parents, queue = {}, [start]
        while start not in parents:  # breadth-first back to `start`: the shortest cycle through it
            node = queue.pop(0)
            for nxt in sorted(edges[node]):
                if nxt in members and nxt not in parents:
                    parents[nxt] = node
                    queue.append(nxt)
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(parents[path[-1]])
        path.reverse()
        cycles.append(path)
    return cycles


def test_cycle_finder_finds_a_planted_cycle():
    """The cycle finder reports a 3-module cycle (and only it) in a hand-made graph with a side branch."""
    edges = {"a": {"b": 1}, "b": {"c": 1, "d": 1}, "c": {"a": 1}, "d": {}}
    assert _cycles(edges) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


def test_a_planted_function_level_cycle_is_found():
    """Two planted modules that import each other, one of them only inside a function, form a cycle the rule
    sees (read by the same scanner as the real tree)."""
    planted = {"pkg.a": "from pkg.b import helper\n",
               "pkg.b": "def helper():\n    from pkg.a import thing\n    return thing\n"}
    imports = {}
    for module, source in planted.items():
        collector = _Collector(module, is_package=False)
        collector.visit(ast.parse(source))
        imports[module] = collector.records
    assert ("pkg.a", 2, False) in imports["pkg.b"]
    assert _cycles(_edges(imports, set(planted))) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_no_import_cycles():
    """(d) no import cycles among export/ and reszoo/ modules, function-level imports included."""
    edges = _edges(IMPORTS, MODULES)
    described = [" -> ".join(path) + " (" + "; ".join(_where(a, edges[a][b], b) for a, b in zip(path, path[1:])) + ")"
                 for path in _cycles(edges)]
    assert not described


def test_cli_does_not_plot():
    """(e) nothing under reszoo/cli imports matplotlib, at any level: plotting lives outside the CLI."""
    modules = [m for m in MODULES if _under(m, "reszoo.cli")]
    assert modules
    assert not _violations(modules, lambda target, _: _under(target, "matplotlib"))
