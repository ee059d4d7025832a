"""The shape of the package: no import circle (lazy imports inside functions included), and the core
never imports the adapters or the servers."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "backend" / "empathic"
ADAPTERS = ("empathic.labelstudio", "empathic.cli", "empathic.exports", "empathic.__main__")
SERVER_LIBRARIES = ("flask", "redis", "rq", "gunicorn", "label_studio_sdk", "requests")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module this file imports, relative imports resolved, at any depth of the code."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)  # from . import module
            elif node.module:
                found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_module_imports_itself_round_a_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dependency in sorted(graph[node]):
            # a package's __init__ importing its own submodules is how packages work, not a circle
            if node.startswith(dependency + ".") and graph[dependency] and node in graph[dependency]:
                continue
            if state.get(dependency) == 1:
                return path + [node, dependency]
            if dependency not in state:
                found = visit(dependency, path + [node])
                if found:
                    return found
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            circle = visit(module, [])
            assert circle is None, " -> ".join(circle)


def test_the_core_imports_no_adapter_and_no_server_library():
    graph = {name: _imports(path) for name, path in ((_module_name(p), p) for p in PACKAGE.rglob("*.py"))}
    for name, imports in graph.items():
        if name.startswith(ADAPTERS) or name == "empathic":
            continue
        bad = sorted(m for m in imports if m.startswith(ADAPTERS) or m.split(".")[0] in SERVER_LIBRARIES)
        assert not bad, f"{name} imports {bad}"
