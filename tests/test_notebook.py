"""docs/tour.ipynb, executed in a real Jupyter kernel: every cell runs, and each shows what the tour
says (a LaTeX derivation, the generated gradients, a check that finds the planted bug, a loss curve).
Needs nbclient, nbformat and ipykernel: `pip install -e ".[docs]"` (skipped, with the reason, without)."""

import pytest
from conftest import ROOT

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat: pip install -e '.[docs]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient: pip install -e '.[docs]'")
pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel: pip install -e '.[docs]'")
pytest.importorskip("matplotlib", reason="the tour plots a loss curve: pip install matplotlib")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    notebook = nbformat.read(ROOT / "docs" / "tour.ipynb", as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path_factory.mktemp("tour"))}})
    client.execute()
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def outputs(cell, mime):
    return [o["data"][mime] for o in cell.outputs if mime in o.get("data", {})]


def text(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_no_cell_fails(executed):
    assert not [o for cell in executed for o in cell.outputs if o.output_type == "error"]


def test_the_derivation_is_shown_as_latex(executed):
    (latex,) = outputs(executed[1], "text/latex")
    assert latex.startswith("$$") and r"x &\in \mathbb{R}^{N \times 2}" in latex
    assert r"\delta_{2}" in latex and latex.count(r"\boxed{") == 4  # one closed form per gradient


def test_the_generated_gradients_and_the_check(executed):
    assert "def gradients(" in text(executed[2]) and "delta2 = " in text(executed[2])
    report = text(executed[3])
    assert "backward vs generated" in report
    assert "WRONG" in report and report.rstrip().endswith("FAILED: 4 array(s) wrong: W1, b1, W2, b2")


def test_the_loss_curve_is_an_image(executed):
    assert text(executed[4]).startswith("loss 0.096393")
    (png,) = outputs(executed[4], "image/png")
    assert len(png) > 1000
