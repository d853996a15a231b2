"""Installing the project as a newcomer does: a clone in a folder named miiii/, `pip install -e`, then
`import miiii` from the folder that holds the clone.

Why this can go wrong: there the current directory leads sys.path and holds miiii/ without an
__init__.py, which Python's path finder keeps as a candidate namespace package while it looks on.
A regular module miiii.py on any later sys.path entry still wins; but setuptools' default editable
install of a flat layout is a finder appended to sys.meta_path, asked only after the path finder has
settled for the empty namespace (AttributeError: module 'miiii' has no attribute 'make_task').
pyproject.toml's package-dir = {"" = "."} makes the editable install a plain sys.path entry (a .pth
file naming the project folder), so miiii.py is found. These tests build a real venv (~10 s).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = "Scripts" if os.name == "nt" else "bin"


def run(cmd, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's paths, nothing else
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    """(folder holding the clone, the clone, the venv's bin folder), after `pip install -e clone`."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of the project to clone")
    home = tmp_path_factory.mktemp("newcomer")
    clone = home / "miiii"
    cloned = run(["git", "clone", "--quiet", ROOT, clone], home)
    assert cloned.returncode == 0, cloned.stderr
    # a clone holds the last commit: bring over what is changed, new or deleted (not ignored) in
    # this working tree, so that it is what is tested (nothing to do in CI, where the tree is a commit)
    listed = run(["git", "ls-files", "-z", "--modified", "--others", "--exclude-standard"], ROOT).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
        elif (clone / name).is_file():
            (clone / name).unlink()
    venv = home / "venv"
    made = run([sys.executable, "-m", "venv", "--system-site-packages", venv], home)
    if made.returncode != 0 or run([venv / BIN / "python", "-m", "pip", "--version"], home).returncode:
        pytest.skip(f"no venv with pip here (python -m venv: {made.stderr.strip()[-200:]!r})")
    installed = run([venv / BIN / "python", "-m", "pip", "install", "--no-deps", "-e", clone], home)
    assert installed.returncode == 0, (installed.stdout + installed.stderr)[-3000:]
    return home, clone, venv / BIN


def test_import_from_the_folder_that_holds_a_clone_named_miiii(newcomer):
    home, clone, bin_dir = newcomer
    assert (home / "miiii").is_dir() and not (home / "miiii" / "__init__.py").exists()
    code = ("import miiii, plain_model; miiii.make_task('nanda', 5); "
            "print(miiii.__file__); print(plain_model.__file__)")
    result = run([bin_dir / "python", "-c", code], home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [str(clone / "miiii.py"), str(clone / "plain_model.py")]


def test_the_installed_command_names_itself(newcomer):
    home, _, bin_dir = newcomer
    result = run([bin_dir / "miiii", "--help"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: miiii [-h]")


def test_pyproject_lists_every_module_and_the_test_extra():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules = sorted(project["tool"]["setuptools"]["py-modules"])
    assert modules == sorted(f.stem for f in ROOT.glob("*.py")), "a top-level module is not packaged"
    assert any(r.startswith("pytest") for r in project["project"]["optional-dependencies"]["test"])
    assert "pip install -e .[test]" in (ROOT / "README.md").read_text()  # the set-up that runs the tests
