"""Imports flow one way: rundir, grokfast, fourier (and plain_model) <- miiii <- fft_analysis <- figures
<- experiments/ (README.md, "A walk of the data through the code").

Each top-level module may import only the project modules below it, read from its source (ast), so a
module that reaches up -- miiii importing fft_analysis to record the analysis during training, the
analysis importing figures, anything importing experiments/ -- fails here, at any depth of the file.
A project module imported inside a function (a lazy import, the usual way around an import circle) is
refused too. A new module must be placed in BELOW.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {path.stem for path in ROOT.glob("*.py")} | {path.stem for path in (ROOT / "experiments").glob("*.py")}

# module: the project modules it may import
BELOW = {"rundir": set(), "grokfast": set(), "fourier": set(), "plain_model": set()}
BELOW["miiii"] = {"rundir", "grokfast", "fourier"}
BELOW["fft_analysis"] = BELOW["miiii"] | {"miiii"}
BELOW["figures"] = BELOW["fft_analysis"] | {"fft_analysis"}


def project_imports(source):
    """[(module imported, line, inside a function)] for every import of a project module in `source`."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module]
            else:
                names = []
            found.extend((name.split(".")[0], child.lineno, in_function) for name in names
                         if name.split(".")[0] in PROJECT)
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def violations(module, source):
    """One line per import of `source` (the text of `module`) that breaks the one-way flow."""
    lines = []
    for name, line, in_function in project_imports(source):
        if name not in BELOW[module]:
            lines.append(f"{module}.py:{line} imports {name}, which is not below it")
        elif in_function:
            lines.append(f"{module}.py:{line} imports {name} inside a function")
    return lines


def test_every_module_has_its_place():
    assert set(BELOW) == {path.stem for path in ROOT.glob("*.py")}


def test_imports_flow_one_way():
    found = [v for module in BELOW for v in violations(module, (ROOT / f"{module}.py").read_text())]
    assert found == []


def test_the_layers_import_what_the_readme_says():
    imported = {module: {name for name, _, _ in project_imports((ROOT / f"{module}.py").read_text())}
                for module in BELOW}
    assert imported["fourier"] == imported["grokfast"] == imported["rundir"] == set()
    assert imported["miiii"] == {"fourier", "grokfast", "rundir"}
    assert "miiii" in imported["fft_analysis"] and "fourier" in imported["fft_analysis"]
    assert not any("figures" in imported[m] for m in ("miiii", "fft_analysis"))


def test_a_module_that_reaches_up_fails():
    assert violations("fourier", "import numpy as np\nimport miiii\n") == \
        ["fourier.py:2 imports miiii, which is not below it"]
    assert violations("miiii", "import fourier\n\ndef hooks():\n    import fft_analysis\n") == \
        ["miiii.py:4 imports fft_analysis, which is not below it"]
    assert violations("fft_analysis", "from figures import draw\n") == \
        ["fft_analysis.py:1 imports figures, which is not below it"]
    assert violations("figures", "import runner\n") == ["figures.py:1 imports runner, which is not below it"]
    assert violations("miiii", "if __name__ == '__main__':\n    import miiii\n") == \
        ["miiii.py:2 imports miiii, which is not below it"]


def test_a_lazy_import_fails_even_when_allowed():
    assert violations("miiii", "def f():\n    import fourier\n") == ["miiii.py:2 imports fourier inside a function"]
    assert violations("miiii", "import math\nimport fourier\n\ndef f():\n    import ctypes\n") == []
