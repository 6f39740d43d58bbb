"""Execute every teaching notebook (they assert their own key numbers, so they cannot silently rot)."""
import time
from pathlib import Path

import pytest

from mobilenet_np.testing import fixtures_dir, missing_reason

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    if fixtures_dir() is None:
        pytest.skip(missing_reason("images") + " (the notebooks use the real weights and photos)")
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name}: a cell failed:\n{str(e)[-3000:]}")
    print(f"\n{path.name}: {time.time() - start:.1f} s")
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert figures >= 1, f"{path.name} drew no figure"
