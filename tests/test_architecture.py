"""The package's shape: small modules, no import circle, each task constant written once."""

import ast
import re
from pathlib import Path

import course_utils

PACKAGE = Path(course_utils.__file__).resolve().parent
ROOT = PACKAGE.parent
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports, at module level or inside a function (a late import that only
    hides a circle still ties the two modules together)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("course_utils")}


def test_no_module_is_longer_than_700_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in _modules().items()}
    long = {n: k for n, k in long.items() if k > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines each): {long}"


def test_no_import_circle():
    modules = _modules()
    graph = {n: {m for m in _imports(n, p) if m in modules and m != n} for n, p in modules.items()}
    # a package's __init__ is imported by each of its modules; an edge into it is not a circle of ours
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack + [n, m]
            if m not in state and (cycle := visit(m, stack + [n])):
                return cycle
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            cycle = visit(n, [])
            assert cycle is None, f"import circle: {' -> '.join(cycle)}"


def _string_literals(path: Path) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def test_task_constants_are_written_once():
    """The sentiment task's template and the default model's name are literals in one module each; lessons and
    other modules use the names."""
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "lessons_src").glob("*.py")]
    for literal, home in (("Review: [X]\nSentiment: [Z]", "prompting.py"), ("smollm2-135m-instruct", None)):
        where = [f.relative_to(ROOT).as_posix() for f in files for s in _string_literals(f) if s == literal]
        if home:
            assert where == [f"course_utils/{home}"], f"{literal!r} is written in {where}: use the constant"
        else:  # the model's own registry entry and the course default
            assert sorted(where) == ["course_utils/config.py", "course_utils/models.py"], where


def test_one_import_style_inside_the_package():
    """Inside course_utils: siblings as ``from .x import``, anything further as ``from course_utils.x import``
    (never ``from ..x``)."""
    parents = [f"{p.relative_to(ROOT)}:{i}" for p in PACKAGE.rglob("*.py")
               for i, line in enumerate(p.read_text().splitlines(), 1) if re.match(r"\s*from \.\.", line)]
    assert not parents, parents


def test_code_in_strings_imports_modules_that_exist():
    """Code the package writes into kernels, notebooks and hints (``"from course_utils.x import y"``) names real
    modules: a module that moves must not leave a string behind."""
    import importlib.util

    files = [*PACKAGE.rglob("*.py"), *(ROOT / "lessons_src").glob("*.py"), *(ROOT / "tools").glob("*.py")]
    named = {m for f in files for s in _string_literals(f)
             for m in re.findall(r"from (course_utils(?:\.\w+)*) import", s)}
    missing = sorted(m for m in named if importlib.util.find_spec(m) is None)
    assert named and not missing, f"strings import modules that do not exist: {missing}"


def test_lessons_never_rebind_the_modules_they_import():
    """A lesson calls the package by module name (``prompting.Template``); a variable of the same name would
    shadow the module for every later cell."""
    import jupytext

    clashes = []
    for path in sorted((ROOT / "lessons_src").glob("*.py")):
        code = "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "code")
        tree = ast.parse("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
        modules = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   and n.module == "course_utils" for a in n.names}
        bound = {t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.For, ast.comprehension))
                 for t in ast.walk(n.targets[0] if isinstance(n, ast.Assign) else n.target)
                 if isinstance(t, ast.Name)}
        clashes += [f"{path.name}: {name}" for name in sorted(modules & bound)]
    assert not clashes, f"variables that shadow a course module: {clashes}"
