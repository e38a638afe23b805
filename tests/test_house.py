"""The package's structure: no import cycles, nothing imports the CLI, no private names across modules, one way
to make a blank pipeline. Read from the source with `ast`, so a new back door fails here, not in review."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "spacy_codeie"


def _modules() -> Dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: Dict[str, Path]) -> List[tuple]:
    """(imported module, imported names) for every import in the file, at any depth (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            out.append((target, names))
            out.extend((f"{target}.{n}", []) for n in names if f"{target}.{n}" in modules)
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return [(target, names) for target, names in out if target in modules and target != name]


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {name: {t for t, _ in _imports(name, path, modules)} for name, path in modules.items()}


def test_no_import_cycles():
    graph = _graph()
    cycles = []
    for start in graph:  # a path from a module back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(trail + [start])
                elif nxt not in seen and nxt.startswith(start.split(".")[0]):
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    # importing a package's own __init__ from inside it is how Python loads packages, not a cycle of ours
    real = [c for c in cycles if not any(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(c, c[1:]))]
    assert not real, f"import cycles: {real[:3]}"


def test_nothing_imports_the_cli():
    importers = sorted(m for m, targets in _graph().items() if "spacy_codeie.cli" in targets)
    assert importers == ["spacy_codeie.__main__"]


def test_no_private_names_imported_across_modules():
    modules = _modules()
    private = []
    for name, path in modules.items():
        for target, names in _imports(name, path, modules):
            private.extend(f"{name} <- {target}.{n}" for n in names if n.startswith("_") and n != "__version__")
    assert not private


def test_one_function_makes_blank_pipelines():
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if "spacy.blank(" in p.read_text(encoding="utf8"))
    assert users == ["readers.py"]
