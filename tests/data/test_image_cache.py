"""The image cache: built once (resuming after a failure), read by the data module, refused when
it was built for another size or annotation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xrg.data import image_cache
from xrg.data.datamodule import ReportDataModule
from xrg.data.errors import DataError
from xrg.data.synthetic import ensure_benchmark


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return ensure_benchmark(tmp_path_factory.mktemp("cache") / "bench", 8, image_size=96, split_fractions=(0.5, 0.25, 0.25))


def _module(root: Path, cache: Path | None, resize: int = 48) -> ReportDataModule:
    module = ReportDataModule(annotation_path=str(root / "annotation.json"), labels_path=str(root / "labels.json"),
                              image_size=40, resize=resize, image_cache=str(cache) if cache else None)
    module.setup("fit")
    return module


def test_interrupted_build_resumes_and_the_data_module_reads_the_cache(dataset, tmp_path, monkeypatch):
    out = tmp_path / "cache48"
    images = image_cache.referenced_images(dataset / "annotation.json")
    calls = []
    real = image_cache.read_image

    def failing(path, window=None):
        calls.append(path)
        if len(calls) == 5:
            raise DataError(f"cannot read image {path}: simulated crash")
        return real(path, window)

    monkeypatch.setattr(image_cache, "read_image", failing)
    with pytest.raises(DataError, match="simulated"):
        image_cache.build_cache(dataset / "annotation.json", dataset / "images", out, 48, image_format="png")
    assert not out.exists()  # nothing that looks complete
    (partial,) = tmp_path.glob(".cache48.partial-*")
    assert len(list(partial.rglob("*.png"))) == 4
    image_cache.build_cache(dataset / "annotation.json", dataset / "images", out, 48, image_format="png")
    assert len(calls) == 5 + len(images) - 4  # the 4 written images were not decoded again
    assert json.loads((out / "cache.json").read_text())["images"] == len(images) == len(list(out.rglob("*.png")))

    raw, cached = _module(dataset, None), _module(dataset, out)
    assert cached.datasets["test"].image_dir == out / "images"
    a, b = raw.datasets["test"][0]["images"], cached.datasets["test"][0]["images"]
    assert a.shape == b.shape == torch.Size([2, 3, 40, 40])
    # 96 px -> 48 px once, then -> 40 px, against 96 px -> 40 px: close, not identical
    assert (a - b).abs().mean() < 0.05


def test_a_cache_for_another_size_or_annotation_is_refused(dataset, tmp_path):
    from xrg.data.cli import main

    out = tmp_path / "c"
    assert main(["cache", "--annotation", str(dataset / "annotation.json"), "--size", "48", "--out", str(out), "--workers", "2"]) == 0
    assert len(list(out.rglob("*.jpg"))) == len(image_cache.referenced_images(dataset / "annotation.json"))
    assert _module(dataset, out).datasets["test"][0]["images"].shape == torch.Size([2, 3, 40, 40])  # reads the JPEGs
    with pytest.raises(DataError, match=r"built for size=48, but .* needs size=64"):
        _module(dataset, out, resize=64)
    other = tmp_path / "other"
    other.mkdir()
    annotation = json.loads((dataset / "annotation.json").read_text())
    annotation["test"] = annotation["test"][:1]
    (other / "annotation.json").write_text(json.dumps(annotation))
    with pytest.raises(DataError, match="annotation_sha256"):
        image_cache.check_cache(out, other / "annotation.json", 48, None)
    assert image_cache.check_cache(tmp_path / "absent", dataset / "annotation.json", 48, None) is None
