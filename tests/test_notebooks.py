"""Executes every notebook top to bottom with quick settings (TFKD_QUICK=1)."""

import glob
import os
import re
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = os.path.join(os.path.dirname(__file__), "..")
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_the_notebooks_are_the_ones_the_script_writes():
    """Every notebook comes from scripts/make_notebooks.py, and the script writes no other."""
    script = open(os.path.join(ROOT, "scripts", "make_notebooks.py")).read()
    written = sorted(re.findall(r'write\("([0-9A-Za-z_]+\.ipynb)"', script))
    assert [os.path.basename(p) for p in NOTEBOOKS] == written and written


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # committed notebooks carry no outputs
        assert not cell.get("outputs"), f"{os.path.basename(path)} has committed outputs"
    monkeypatch.setenv("TFKD_QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    # Not in Colab, the install cell uses the checkout named by TFKD_REPO_DIR; the
    # notebook's own files land in tmp_path.
    monkeypatch.setenv("TFKD_REPO_DIR", os.path.abspath(ROOT))
    start = time.perf_counter()
    client.execute()
    print(f"{os.path.basename(path)}: {time.perf_counter() - start:.0f} s")
