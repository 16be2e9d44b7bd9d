"""notebooks/rd_curves.ipynb runs top to bottom, headless, on a small run, in this interpreter's kernel."""

from __future__ import annotations

import nbformat
import pytest
from ipykernel.kernelspec import install
from nbclient import NotebookClient
from rd_fixture import write_run

from ctc.paths import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "rd_curves.ipynb"
KERNEL = "gfvc-ctc-test"


@pytest.mark.slow
def test_rd_curves_notebook_runs(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path / "run")
    # A kernelspec for the interpreter running the tests, so the notebook sees this environment.
    install(kernel_name=KERNEL, prefix=str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    monkeypatch.setenv("GFVC_RUN_DIR", str(run_dir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    markdown = "".join(output.data.get("text/markdown", "") for output in outputs if "data" in output)
    assert f"# BD-rate report: {run_dir.name}" in markdown
    assert "| VOXCELEB | VOXCELEB_001 | -50.00% |" in markdown
    tables = "".join(output.data.get("text/html", "") for output in outputs if "data" in output)
    assert "cfte [RANDOM WEIGHTS]" in tables
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 3 * (4 + 2)  # metrics x (sequences + class averages)
