"""The shape of the package, held by the suite: the import contracts in
pyproject.toml (import-linter), no import cycle between any two modules
(type-only imports included), and no module grown past a page's length
without saying why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "quality"
MAX_LINES = 600
# A module longer than MAX_LINES says why in this line of its docstring.
REASON = "Longer than 600 lines because"


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout.split("Contracts:")[-1]


def test_no_two_modules_import_each_other_even_through_others() -> None:
    graph = grimp.build_graph("quality", exclude_type_checking_imports=False, cache_dir=None)
    cycles = [component for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def test_no_page_imports_another_page() -> None:
    graph = grimp.build_graph("quality", exclude_type_checking_imports=False, cache_dir=None)
    pages = {module for module in graph.modules if module.startswith("quality.pages.")}

    def page_of(module: str) -> str:
        return ".".join(module.split(".")[:3])

    crossings = sorted(
        (importer, imported) for importer in pages
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported in pages and page_of(imported) != page_of(importer))
    assert crossings == []


def test_no_module_is_longer_than_a_page_without_a_reason_at_its_top() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_LINES and REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert long == []


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's strongly connected components of the module graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                found.append(component)
    return found
