"""Inputs that look odd but are fine are handled, and say so where it matters: every pixel mode
reaches the model (16-bit, 32-bit, float, palette, CMYK, RGBA, 1x1) and a study skipped under
`on_bad_study: skip` is counted in a warning and gets an error row, never silently dropped."""

from __future__ import annotations

import json
import logging

import numpy as np
from PIL import Image

from bad_inputs.conftest import QUIET, data_args

RAMP = np.linspace(0, 1, 32 * 32).reshape(32, 32)
ODD_IMAGES = {
    "uint16.png": lambda p: Image.fromarray((RAMP * 4000 + 500).astype(np.uint16)).save(p),
    "int32.tiff": lambda p: Image.fromarray((RAMP * 1e6).astype(np.int32)).save(p),
    "float.tiff": lambda p: Image.fromarray(RAMP.astype(np.float32)).save(p),
    "palette.png": lambda p: Image.fromarray((RAMP * 255).astype(np.uint8)).convert("P").save(p),
    "cmyk.jpg": lambda p: Image.fromarray((RAMP * 255).astype(np.uint8)).convert("CMYK").save(p),
    "rgba.png": lambda p: Image.fromarray((RAMP * 255).astype(np.uint8)).convert("RGBA").save(p),
    "one_pixel.png": lambda p: Image.new("L", (1, 1), 128).save(p),
}


def test_every_pixel_mode_reaches_the_model(world, tmp_path, xrg):
    (tmp_path / "images").mkdir()
    studies = []
    for name, save in ODD_IMAGES.items():
        save(tmp_path / "images" / name)
        studies.append({"id": name, "report": "Heart size is normal.", "image_path": [name]})
    (tmp_path / "annotation.json").write_text(json.dumps({"train": [], "val": [], "test": studies}))
    out = tmp_path / "preds.jsonl"
    code, _, err = xrg("predict", f"--ckpt_path={world.report}", *data_args(tmp_path / "annotation.json"),
                       f"--predictions={out}", *QUIET)
    assert code == 0 and "Traceback" not in err, err[-1500:]
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == sorted(ODD_IMAGES)


def test_a_skipped_study_is_counted(world, tmp_path, xrg, caplog):
    annotation = json.loads(world.annotation.read_text())
    annotation["test"][0]["image_path"] = ["study_006/missing.png"]
    path = tmp_path / "annotation.json"
    path.write_text(json.dumps(annotation))
    out = tmp_path / "preds.jsonl"
    with caplog.at_level(logging.WARNING):
        code, _, _ = xrg("predict", f"--ckpt_path={world.report}", *data_args(path), "--data.on_bad_study=skip",
                         f"--data.image_dir={world.data / 'images'}", f"--predictions={out}", *QUIET)
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert code == 0 and set(rows) == {"study_006", "study_007"}  # no row silently missing
    assert "missing.png does not exist" in rows["study_006"]["error"] and "error" not in rows["study_007"]
    assert "skipped 1 bad studies of 2" in caplog.text
