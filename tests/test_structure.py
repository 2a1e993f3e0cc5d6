"""The shape of the code, read from the source (ast), not by importing it: no import cycle among
agd/, experiments/ and scripts/ (imports inside functions count: a cycle dodged that way is still
a cycle), no `sys.path` edit in any of the repo's Python files or notebooks, and every file in
scripts/ a thin entry point of at most 40 lines."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("agd", "experiments", "scripts")
SKIP = {".venv", ".git", "node_modules", "build", "dist", "runs", "data", "outputs", "multirun"}
SCRIPT_LINES = 40


def python_files(root: Path = REPO) -> list[Path]:
    """The repo's own .py files (virtual environments, data and run folders left out)."""
    return sorted(p for p in root.rglob("*.py") if not SKIP & set(p.relative_to(root).parts[:-1]))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The repo modules one module imports, at any depth of its code. `from pkg import sub`
    imports the module pkg.sub when there is one, else pkg itself; a script's bare `import x`
    is its sibling scripts/x.py when there is one (the script's folder is on its path)."""
    found = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    if name.startswith("scripts."):
        found = {f"scripts.{m}" if f"scripts.{m}" in modules else m for m in found}
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    files = [p for p in python_files() if p.relative_to(REPO).parts[0] in PACKAGES]
    modules = {module_name(p): p for p in files}
    return {name: imported(ast.parse(path.read_text()), name, path.name == "__init__.py", set(modules)) - {name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    source = {"a": "import b\n", "b": "def f():\n    from c import x\n", "c": "from a import y\n", "d": "import a\n",
              "scripts.e": "import scripts_f\n", "scripts.scripts_f": "def g():\n    import e\n"}
    graph = {name: imported(ast.parse(text), name, False, set(source)) for name, text in source.items()}
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "scripts.e": {"scripts.scripts_f"},
                     "scripts.scripts_f": {"scripts.e"}}
    assert cycles(graph) == [["a", "b", "c"], ["scripts.e", "scripts.scripts_f"]]


def test_no_import_cycles():
    graph = import_graph()
    assert "agd.optim" in graph and "scripts.reproduce" in graph  # the walk sees every package
    found = cycles(graph)
    assert not found, "import cycles (module-level or inside functions): " + "; ".join(" <-> ".join(c) for c in found)


def sys_path_edits(path: Path) -> list[int]:
    """Lines that touch sys.path (or pytest's syspath_prepend) in one Python file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            lines.append(node.lineno)
        if isinstance(node, ast.Attribute) and node.attr == "syspath_prepend":
            lines.append(node.lineno)
    return lines


def test_nothing_edits_sys_path():
    edits = {str(p.relative_to(REPO)): sys_path_edits(p) for p in python_files()}
    assert not {p: lines for p, lines in edits.items() if lines}
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        code = [c["source"] for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        assert "sys.path" not in "".join("".join(c) for c in code), notebook.name


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").iterdir() if p.is_file()))
def test_every_script_is_a_thin_entry_point(script):
    lines = (REPO / "scripts" / script).read_text().splitlines()
    assert len(lines) <= SCRIPT_LINES, f"scripts/{script} has {len(lines)} lines; its body belongs in a package"
