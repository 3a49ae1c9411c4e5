"""The docs notebook runs top to bottom (a real Jupyter kernel) and writes what it promises."""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "first_hour.ipynb"


def test_notebook_runs_and_writes_reports_and_heatmaps(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    rows = [json.loads(line) for line in (tmp_path / "notebook_run" / "reports.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert isinstance(row["report"], str)
        assert len(row["findings"]) == 14 and all(0 <= p <= 1 for p in row["findings"].values())
    heatmaps = sorted((tmp_path / "notebook_run" / "heatmaps").glob("*.png"))
    assert len(heatmaps) == 2 and all(path.read_bytes()[:4] == b"\x89PNG" for path in heatmaps)
    # The loss printed by the training cell fell (the cell asserts it too).
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "training loss:" in outputs
