import json
import math

import pytest
import torch
from PIL import Image

from xrg.data import DataError, ReportDataModule, read_annotation, read_labels


def _datamodule(root, **kw):
    dm = ReportDataModule(
        annotation_path=str(root / "annotation.json"),
        labels_path=str(root / "labels.json"),
        image_size=32,
        resize=40,
        batch_size=3,
        **kw,
    )
    dm.setup("fit")
    return dm


def test_batches_hold_views_cleaned_reports_and_labels(tiny_dataset):
    dm = _datamodule(tiny_dataset)
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (3, 2, 3, 32, 32)
    assert batch["view_mask"].all()
    assert all(r.endswith(" .") and r == r.lower() for r in batch["reports"])
    assert batch["labels"].shape == (3, 14)
    assert math.isnan(batch["labels"][0, 1].item())  # Enlarged Cardiomediastinum never mentioned
    assert len(dm.train_reports()) == 8


def test_studies_with_fewer_views_are_padded_and_masked(tiny_dataset):
    annotation = json.loads((tiny_dataset / "annotation.json").read_text())
    annotation["train"][0]["image_path"] = annotation["train"][0]["image_path"][:1]
    (tiny_dataset / "annotation.json").write_text(json.dumps(annotation))
    dm = _datamodule(tiny_dataset)
    dm.hparams.batch_size = 8
    batch = next(iter(dm._loader("train", train=False)))
    first = batch["ids"].index(annotation["train"][0]["id"])
    assert batch["view_mask"][first].tolist() == [True, False]
    assert batch["images"][first, 1].abs().sum() == 0


def _break(root, split, index, **changes):
    annotation = json.loads((root / "annotation.json").read_text())
    annotation[split][index].update(changes)
    (root / "annotation.json").write_text(json.dumps(annotation))
    return annotation[split][index]["id"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"report": " . "}, "report is empty"),
        ({"image_path": ["../../etc/passwd"]}, "escapes the image root"),
        ({"image_path": ["nowhere/0.png"]}, "does not exist"),
    ],
)
def test_bad_study_errors_name_the_study(tiny_dataset, change, message):
    study_id = _break(tiny_dataset, "train", 2, **change)
    with pytest.raises(DataError, match=message) as err:
        _datamodule(tiny_dataset)
    assert study_id in str(err.value)


def test_skip_policy_counts_bad_studies(tiny_dataset):
    _break(tiny_dataset, "train", 2, report="")
    _break(tiny_dataset, "val", 0, image_path=["missing.png"])
    dm = _datamodule(tiny_dataset, on_bad_study="skip")
    assert dm.skipped_studies() == {"train": 1, "val": 1, "test": 0}
    assert len(dm.datasets["train"]) == 7


def test_unreadable_image_names_study_and_file(tiny_dataset):
    path = tiny_dataset / "images" / "study_000" / "0.png"
    path.write_bytes(b"not a png")
    dm = _datamodule(tiny_dataset)
    with pytest.raises(DataError, match="study_000.*cannot read image"):
        dm.datasets["train"][0]
    skipping = _datamodule(tiny_dataset, on_bad_study="skip")
    batch = next(iter(skipping._loader("train", train=False)))
    assert "study_000" not in batch["ids"]


def test_malformed_annotation_names_file_and_item(tmp_path):
    path = tmp_path / "annotation.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="annotation.json"):
        read_annotation(path)
    path.write_text(json.dumps({"train": [{"id": "s1", "report": "x"}]}))
    with pytest.raises(DataError, match=r"\[train\]\[0\].*image_path"):
        read_annotation(path)


def test_labels_reject_unknown_codes(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"s1": {"Cardiomegaly": 2}}))
    with pytest.raises(DataError, match="s1.*Cardiomegaly"):
        read_labels(path)


def test_eval_transform_is_deterministic_and_rgb(tiny_dataset):
    dm = _datamodule(tiny_dataset)
    a, b = dm.datasets["val"][0]["images"], dm.datasets["val"][0]["images"]
    assert torch.equal(a, b) and a.shape[1] == 3
    assert Image.open(tiny_dataset / "images" / "study_000" / "0.png").mode == "L"


def test_a_python_built_synthetic_module_checkpoints_as_plain_values(tmp_path):
    """Its hyperparameters load with weights_only=True (xrg.load, report()) and rebuild the module."""
    from xrg.data import SyntheticBenchmark

    benchmark = SyntheticBenchmark(root=str(tmp_path / "bench"), num_studies=12, image_size=32)
    module = ReportDataModule(synthetic=benchmark, image_size=32, resize=36)
    torch.save({"datamodule_hyper_parameters": dict(module.hparams)}, tmp_path / "x.ckpt")
    hparams = torch.load(tmp_path / "x.ckpt", weights_only=True)["datamodule_hyper_parameters"]
    assert ReportDataModule(**hparams).synthetic == benchmark


AUGMENT = {"random_affine": {"degrees": 5, "translate": [0.05, 0.05], "scale": [0.9, 1.1]},
           "color_jitter": {"brightness": 0.2, "contrast": 0.2}}


def test_augmentation_draws_from_the_items_seed_and_leaves_evaluation_alone(tiny_dataset):
    plain, augmented = _datamodule(tiny_dataset), _datamodule(tiny_dataset, **AUGMENT)
    train = augmented.datasets["train"]
    assert torch.equal(train[0, 5]["images"], train[0, 5]["images"])  # an epoch's draw replays after a resume
    assert not torch.equal(train[0, 5]["images"], train[0, 6]["images"])
    assert not torch.equal(train[0, 5]["images"], plain.datasets["train"][0, 5]["images"])
    assert torch.equal(augmented.datasets["val"][0]["images"], plain.datasets["val"][0]["images"])
    hparams = {"datamodule_hyper_parameters": dict(augmented.hparams)}
    torch.save(hparams, tiny_dataset / "x.ckpt")  # plain values: the checkpoint loads with weights_only
    assert torch.load(tiny_dataset / "x.ckpt", weights_only=True)["datamodule_hyper_parameters"]["random_affine"] == \
        AUGMENT["random_affine"]


@pytest.mark.parametrize("argument, value", [("random_affine", {"degree": 3}), ("color_jitter", {"brightness": -1})])
def test_a_bad_augmentation_is_refused_when_the_module_is_built(tiny_dataset, argument, value):
    with pytest.raises(ValueError, match=f"{argument}: .*torchvision.transforms"):
        ReportDataModule(annotation_path=str(tiny_dataset / "annotation.json"), **{argument: value})
