"""The house's floors: every import in tfkd/ runs down, and no import closes a circle.

Read from the source with ``ast`` (no module is imported, so no TensorFlow): every
``import``/``from ... import`` counts, those inside functions too, since a lazy import is
still a dependency. ``tfkd/__init__.py`` is the public face, like the CLI.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Each room's floor; a module may import its own room and rooms on lower floors only.
#: (Most specific prefix wins.)  cli → search → pipeline → train, config → distill,
#: compress → verify → data, models, export → base.
FLOORS = {
    "tfkd": 9, "tfkd.cli": 9,
    "tfkd.search": 8,
    "tfkd.pipeline": 7,
    "tfkd.train": 6, "tfkd.config": 6,
    "tfkd.distill": 5, "tfkd.compress": 5,
    "tfkd.verify": 4,
    "tfkd.data": 3, "tfkd.models": 3, "tfkd.export": 3, "tfkd.assets": 3,
    # the base, in three steps
    "tfkd.schema": 2.5, "tfkd.yamlio": 2, "tfkd._keras": 2, "tfkd.distribute": 2,
    "tfkd.registry": 1, "tfkd.lazy_tf": 1, "tfkd.limits": 1, "tfkd.fileio": 1,
    "tfkd.safefile": 1,
}

#: Only the face speaks click.
CLICK_ROOMS = ("tfkd.cli",)

#: The names ``tfkd/__init__.py`` loads lazily, and the module each comes from.
_LAZY = {"keras": "tfkd._keras", "Distiller": "tfkd.distill.distiller",
         "FeaturePair": "tfkd.distill.features"}


def _modules():
    """``{module name: file}`` for tfkd/ and models/ (installed as tfkd.models)."""
    found = {}
    for top, prefix in (("tfkd", "tfkd"), ("models", "tfkd.models")):
        base = os.path.join(ROOT, top)
        for root, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__"
                             and not os.path.islink(os.path.join(root, d)))
            for f in sorted(files):
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(root, f), base)[:-3].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    found[".".join([prefix] + rel)] = os.path.join(root, f)
    return found


def _imports(path, name, modules):
    """The tfkd modules that the file imports, and whether it imports click."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out, click = set(), False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                click |= alias.name.split(".")[0] == "click"
                if alias.name.split(".")[0] == "tfkd":
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative
                module = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                  + ([module] if module else []))
            click |= module.split(".")[0] == "click"
            if module.split(".")[0] != "tfkd":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if sub in modules:
                    out.add(sub)
                elif module == "tfkd" and alias.name in _LAZY:
                    out.add(_LAZY[alias.name])
                else:
                    out.add(module)
    # Importing a package's own __init__ (a parent) is how Python reaches any submodule.
    return {m for m in out if m in modules and not name.startswith(m + ".") and m != name}, click


def _room(name):
    best = max((p for p in FLOORS if name == p or name.startswith(p + ".")), key=len)
    return best


def _graph():
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_every_module_has_a_floor():
    assert [m for m in _modules() if not any(m == p or m.startswith(p + ".") for p in FLOORS)] == []


def test_no_import_runs_up_or_sideways():
    wrong = []
    for name, (deps, _) in _graph().items():
        room = _room(name)
        for dep in deps:
            other = _room(dep)
            if other != room and FLOORS[other] >= FLOORS[room] and room != "tfkd":
                wrong.append(f"{name} -> {dep} ({room} floor {FLOORS[room]}, "
                             f"{other} floor {FLOORS[other]})")
    assert wrong == []


def test_no_import_circle():
    graph = {name: deps for name, (deps, _) in _graph().items()}
    circles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                circles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert circles == []


def test_only_the_face_imports_click():
    assert sorted(n for n, (_, click) in _graph().items()
                  if click and not n.startswith(CLICK_ROOMS)) == []


def test_the_checker_sees_an_upward_import(tmp_path):
    # The rule above can fail: a base module that imports the pipeline is caught.
    path = tmp_path / "fileio.py"
    path.write_text("from tfkd.pipeline import runner\nimport click\n")
    deps, click = _imports(str(path), "tfkd.fileio", _modules())
    assert deps == {"tfkd.pipeline.runner"} and click
    assert FLOORS[_room("tfkd.pipeline.runner")] > FLOORS[_room("tfkd.fileio")]
