"""The house rules that a reader relies on, checked on the source: which room may import which."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "clinitune"
# eval, export, infer and serve stand beside train on the runtime layer (models/, data/), never on top of it.
FORBIDDEN = {
    "eval": {"train"},
    "export": {"train", "eval"},
    "infer": {"train", "eval"},
    "serve": {"train", "eval", "export"},
    "stats": {"train", "eval", "export", "models", "data"},
    "card": {"train", "eval", "export", "data"},
    "logs": {"train", "eval", "export", "models", "data"},
    "models": {"train", "eval", "export"},
    "data": {"train", "eval", "export", "models"},
}
MAX_FUNCTION_LINES = 100  # a function a reader follows top to bottom; longer ones split by stage (train/loop.py)


def _room(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path, text: str | None = None) -> set[str]:
    """Top-level clinitune rooms a module imports, from any depth in the file (function-level imports too)."""
    rel = path.relative_to(SRC)
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target] if node.module else [[*base, a.name] for a in node.names]
            elif node.module and node.module.startswith("clinitune"):
                names = [node.module.split(".")[1:]]
            else:
                continue
            out |= {n[0] for n in names if n}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("clinitune.")}
    return out


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_points_the_wrong_way(path):
    bad = _imports(path) & FORBIDDEN.get(_room(path), set())
    assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}: move what it needs into the runtime layer"


def test_the_checker_sees_relative_absolute_and_function_level_imports():
    text = "from ..train import loop\nfrom clinitune.export import run\n\ndef f():\n    from ..models import generate\n"
    assert _imports(SRC / "eval" / "probe.py", text) == {"train", "export", "models"}


def _long_functions(text: str) -> list[str]:
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_functions_read_top_to_bottom(path):
    long = _long_functions(path.read_text())
    assert not long, f"{path.relative_to(SRC)}: {', '.join(long)}; split it by stage, as train/loop.py does"


def test_the_length_check_counts_signature_and_body():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert _long_functions(f"def f(\n    a,\n):\n{body}\n") == [f"f ({MAX_FUNCTION_LINES + 3} lines)"]
    assert _long_functions("def g():\n    return 1\n") == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_crosses_a_module(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("clinitune")):
            private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            assert not private, f"{path.relative_to(SRC)} imports private {private} from {node.module}"


def test_records_come_in_before_privacy_acts_on_them():
    """data/records reads sources; data/privacy screens and de-identifies them: never the other way round."""
    for path in sorted((SRC / "data" / "records").glob("*.py")):
        text = path.read_text()
        assert "privacy" not in {
            a
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.ImportFrom)
            for a in (node.module or "").split(".")
        }, path.name
