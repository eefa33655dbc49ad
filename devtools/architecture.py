"""`python -m devtools.architecture`: the house rules an import graph and a line count can check.

- Imports between `backend` modules form no cycle, and the leaves import nothing of ours.
- No class over 150 lines and no function over 60, in `backend/` and `mock_auth/`.

Exit status 1 with one line per breach; run by `nox -s lint`.
"""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("config", "models", "middleware", "lifecycle", "db_errors", "handoff", "breaker")
MAX_CLASS, MAX_FUNCTION = 150, 60


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports(tree: ast.AST) -> set[str]:
    """The `backend` modules a module's code imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("backend"):
            if node.module == "backend":
                found |= {f"backend.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("backend.")}
    return found


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = 2
        return None

    return next(
        (found for node in graph if node not in state and (found := visit(node, [node]))), None
    )


def oversized(path: Path, tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
            if size > limit:
                yield f"{path}:{node.lineno}: {node.name} is {size} lines (most {limit})"


def breaches() -> Iterator[str]:
    graph: dict[str, set[str]] = {}
    for package in ("backend", "mock_auth"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if package == "backend":
                graph[module_name(path)] = imports(tree) - {module_name(path)}
            yield from oversized(path.relative_to(ROOT), tree)
    if found := cycle(graph):
        yield "import cycle: " + " -> ".join(found)
    for leaf in LEAVES:
        if graph.get(f"backend.{leaf}"):
            yield f"backend/{leaf}.py is a leaf but imports {sorted(graph[f'backend.{leaf}'])}"


def main() -> int:
    found = list(breaches())
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
