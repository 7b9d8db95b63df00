"""The layout rules of the README's architecture section, checked on the source itself.

No import cycle among the project's modules (function-level imports included), a small app/ top
level, small modules, Streamlit only where the UI lives, and jobs that never reach for the CLI or UI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "models", "utils", "pages")
MAX_LINES = 400


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every project .py file."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in `path` (module level and inside functions)."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is how a facade works, not a cycle
            if nxt.startswith(node + "."):
                continue
            if colour.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if colour.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour.get(node) is None and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_app_top_level_is_small() -> None:
    top = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert len(top) <= 8, top


@pytest.mark.parametrize("pkg", (*PACKAGES, "bench"))
def test_no_module_over_the_limit(pkg: str) -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / pkg).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_streamlit_only_in_the_ui() -> None:
    graph_users = []
    for name, path in project_modules().items():
        if name.startswith(("models", "utils", "app.jobs", "app.cli")) or name in ("app.engine", "app.analysis",
                                                                                 "app.explain"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "streamlit" for n in names):
                    graph_users.append(name)
    assert not graph_users


def test_layers_point_one_way() -> None:
    """Jobs never import the CLI or the UI; the service layer imports neither; models/utils import no app;
    utils imports no models; the CLI imports no UI."""
    bad = []
    for name, deps in import_graph().items():
        for dep in deps:
            if name.startswith("app.jobs") and dep.startswith(("app.cli", "app.ui")):
                bad.append((name, dep))
            service = name in ("app.engine", "app.analysis", "app.explain")
            if service and dep.startswith(("app.cli", "app.ui", "app.jobs")):
                bad.append((name, dep))
            if name.startswith(("models", "utils")) and dep.startswith(("app", "pages")):
                bad.append((name, dep))
            if name.startswith("utils") and dep.startswith("models"):  # utils sits below models
                bad.append((name, dep))
            if name.startswith("app.cli") and dep.startswith(("app.ui", "pages")):
                bad.append((name, dep))
    assert not bad, bad
