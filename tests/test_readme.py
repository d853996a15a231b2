"""The README's Python block runs as written, from a directory that is not the repository.

It runs in a fresh interpreter whose only link to the project is PYTHONPATH, which is what
`pip install -e .` gives (a path entry for the flat modules), so a snippet that only works from
the repository root, or that uses a name it never defined, fails here.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_python_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_one_python_block():
    blocks = readme_python_blocks()
    assert len(blocks) == 1, "the README's API example should be one block (this test runs it)"
    assert "import miiii" in blocks[0]


def test_readme_python_block_runs_as_written(tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(readme_python_blocks()[0])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    accuracy = float(re.search(r"valid accuracy ([0-9.]+)", result.stdout).group(1))
    assert accuracy >= 0.99, result.stdout  # the README says it groks
    assert not list(tmp_path.glob("runs")), "the snippet must not write run directories"
