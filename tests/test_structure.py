"""The code's shape: imports run one way (no module imports itself back through
others) and no module outgrows one concept (500 lines), in the plugin and in the
benchmark alike."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("saelens_aligned", "benchmarks")
MAX_MODULE_LINES = 500


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES (the committed
    results folder holds data, not code)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if "results" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports anywhere in its body (an
    import inside a function is a dependency all the same)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            # `from package import module` imports the module itself.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.update(t for t in targets if t in known)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    known = set(modules)
    return {name: imported_modules(path, name, known) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_circle_and_passes_a_chain():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_itself_back_through_others():
    cycles = import_cycles(import_graph())
    assert not cycles, "import circles (give the shared part its own module): " + (
        "; ".join(" <-> ".join(c) for c in cycles)
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_500_lines(package):
    too_long = {
        name: n
        for name, path in module_files().items()
        if name.split(".")[0] == package
        and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these by concept: {too_long}"


def test_every_benchmark_subpackage_says_what_it_owns():
    for init in (REPO / "benchmarks").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(REPO)} needs a docstring saying what it owns"
