"""The package's shape: no import cycles, imports that only go down the floors, nothing but the entry points
importing the command line, and short functions on the data path."""

import ast
from pathlib import Path

import sepgraph

PACKAGE = Path(sepgraph.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports at any level (function-level imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("sepgraph"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sepgraph"))
    return found


def test_no_import_cycles_in_the_package():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: {target for target in imports_of(path) if target in modules and target != name}
             for name, path in modules.items()}
    # packages count as nodes like any module: a submodule that imports its own package's __init__ (for a
    # sibling or a name it re-exports) while that __init__ imports the submodule is a cycle
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


LAYERS = [("errors", "devices", "files", "settings", "_version", "progress"), ("models",), ("data",), ("graph",),
          ("training", "results", "parallel"), ("analysis",), ("pruning",), ("report",), ("reproduction",), ("verbs",),
          ("cli",)]
"""The floors of the package, from the ground up (the README's layout): a module imports only from its own folder
(the ground floor's modules count as one) and from floors below its own; the folders of one floor do not import
each other."""


def floor_of(module: str) -> tuple[int, str] | None:
    """(floor, folder) of a module of the package; None for the package itself and ``__main__``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "__main__":
        return None
    level = next(level for level, names in enumerate(LAYERS) if parts[1] in names)
    return level, "ground floor" if level == 0 else parts[1]  # the ground floor's modules import each other freely


def test_every_module_has_a_floor():
    unplaced = [module_name(path) for path in PACKAGE.rglob("*.py")
                if module_name(path) not in ("sepgraph", "sepgraph.__main__")
                and not any(module_name(path).split(".")[1] in names for names in LAYERS)]
    assert not unplaced, f"modules outside the floors of LAYERS: {unplaced}"


def test_imports_only_go_down():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    upward = []
    for name, path in sorted(modules.items()):
        here = floor_of(name)
        if here is None:
            continue
        for target in sorted(imports_of(path)):
            there = floor_of(target) if target in modules else None
            if there is None or there[1] == here[1]:
                continue
            if there[0] >= here[0]:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that do not go down: " + "; ".join(upward)


def test_nothing_but_the_entry_points_imports_the_command_line():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    users = [name for name, path in modules.items() if not name.startswith("sepgraph.cli")
             and name != "sepgraph.__main__" and any(t.startswith("sepgraph.cli") for t in imports_of(path))]
    assert not users, f"modules that import sepgraph.cli: {users}"


def test_functions_on_the_data_path_are_short_steps():
    """No function over 60 lines in analysis/, graph/, parallel/, pruning/ and training/."""
    long = []
    for folder in ("analysis", "graph", "parallel", "pruning", "training"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > 60:
                        long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({length} lines)")
    assert not long, "functions over 60 lines: " + ", ".join(long)
