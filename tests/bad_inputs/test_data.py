"""Bad data sets: each one is refused with one line naming the file, row or key (exit 2)."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from bad_inputs.conftest import QUIET, data_args


def _annotation(world) -> dict:
    return json.loads(world.annotation.read_text())


def _write(world, tmp_path, name: str, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _test(world, annotation, labels=None, image_dir=None):
    """`xrg test` of the tiny report checkpoint on another annotation (images: the tiny set's)."""
    return ["test", f"--ckpt_path={world.report}", *data_args(annotation, labels),
            f"--data.image_dir={image_dir or world.data / 'images'}", *QUIET]


def _edit(change):
    def edited(world):
        annotation = copy.deepcopy(_annotation(world))
        change(annotation)
        return annotation
    return edited


# (case id, annotation content (or a function of the world), what the one line must name)
ANNOTATION_CASES = [
    ("not-json", lambda w: "{ not json", ["annotation.json", "not a UTF-8 JSON file"]),
    ("not-utf8", lambda w: b'{"train": ["\xff\xfe"]}', ["annotation.json", "not a UTF-8 JSON file"]),
    ("a-list", lambda w: [1, 2], ["annotation.json", "expected an object with keys"]),
    ("split-not-list", _edit(lambda a: a.update(test={"x": 1})), ["[test]", "expected a list of studies"]),
    ("missing-report-key", _edit(lambda a: a["test"][1].pop("report")), ["[test][1]", "missing key 'report'"]),
    ("id-not-string", _edit(lambda a: a["test"][0].update(id={"a": 1})), ["[test][0]", "id must be a string"]),
    ("empty-image-list", _edit(lambda a: a["test"][0].update(image_path=[])), ["[test][0]", "image_path"]),
    ("image-escapes-root", _edit(lambda a: a["test"][0].update(image_path=["../../etc/passwd"])),
     ["study_006", "escapes the image root"]),
    ("image-file-missing", _edit(lambda a: a["test"][0].update(image_path=["study_006/9.png"])),
     ["study_006", "9.png does not exist"]),
    ("empty-report", _edit(lambda a: a["test"][0].update(report=" . ")), ["study_006", "the report is empty"]),
    ("duplicate-id-in-split", _edit(lambda a: a["test"][1].update(id=a["test"][0]["id"])),
     ["'study_006' appears twice", "[test][0]", "[test][1]"]),
    ("duplicate-id-train-test", _edit(lambda a: a["test"][0].update(id=a["train"][0]["id"])),
     ["'study_000' appears twice", "[train][0]", "[test][0]"]),
    ("no-test-split", _edit(lambda a: a.pop("test")), ["'test' split has no usable studies", "xrg test"]),
]


@pytest.mark.parametrize("content, culprits", [case[1:] for case in ANNOTATION_CASES], ids=[c[0] for c in ANNOTATION_CASES])
def test_bad_annotation(world, tmp_path, refused, content, culprits):
    refused(_test(world, _write(world, tmp_path, "annotation.json", content(world))), *culprits)


def test_missing_annotation_file(world, tmp_path, refused):
    refused(_test(world, tmp_path / "nowhere" / "annotation.json"), "nowhere/annotation.json", "not found")


LABEL_CASES = [
    ("row-not-object", {"study_000": [1, 0]}, ["labels.json", "'study_000'", "expected an object of observation"]),
    ("unknown-observation", {"study_000": {"Nodule": 1}}, ["labels.json", "unknown observations ['Nodule']"]),
    ("bad-code", {"study_000": {"Edema": 2}}, ["labels.json", "'Edema' must be 1, 0, -1 or null, got 2"]),
    ("study-without-labels", {}, ["study_000", "no labels for it"]),
    ("not-json", "[1, 2", ["labels.json", "not a UTF-8 JSON file"]),
]


@pytest.mark.parametrize("content, culprits", [case[1:] for case in LABEL_CASES], ids=[c[0] for c in LABEL_CASES])
def test_bad_labels(world, tmp_path, refused, content, culprits):
    refused(_test(world, world.annotation, _write(world, tmp_path, "labels.json", content)), *culprits)


def _dataset_with_image(world, tmp_path, name: str, save) -> list[str]:
    """The tiny annotation whose first test study's first view is replaced by `save(path)`."""
    annotation = _annotation(world)
    shutil.copytree(world.data / "images", tmp_path / "images")
    save(tmp_path / "images" / name)
    annotation["test"][0]["image_path"] = [name]
    return _test(world, _write(world, tmp_path, "annotation.json", annotation), image_dir=tmp_path / "images")


IMAGE_CASES = [
    ("truncated-png", "cut.png", lambda p: p.write_bytes(_noise_png(p)[:1000]), ["cut.png", "cannot read image"]),
    ("text-as-png", "notes.png", lambda p: p.write_text("not an image"), ["notes.png", "cannot read image"]),
    ("nan-float-tiff", "nan.tiff",
     lambda p: Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(p), ["nan.tiff", "NaN or infinite"]),
]


def _noise_png(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize("name, save, culprits", [case[1:] for case in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES])
def test_bad_image_file(world, tmp_path, refused, name, save, culprits):
    refused(_dataset_with_image(world, tmp_path, name, save), "study_006", *culprits)


def test_decompression_bomb_is_refused_before_decoding(world, tmp_path, refused, monkeypatch):
    from xrg.data import images

    monkeypatch.setattr(images, "MAX_PIXELS", 32 * 32)  # a real bomb (> 89 MP) would cost seconds to build
    args = _dataset_with_image(world, tmp_path, "bomb.png", lambda p: Image.new("L", (64, 64)).save(p))
    refused(args, "bomb.png is 64x64", "decompression bomb")
