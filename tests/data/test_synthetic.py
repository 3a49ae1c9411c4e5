"""The synthetic benchmark on disk: layout, determinism, caching, render mode, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xrg.cli import main
from xrg.data.cli import main as data_main
from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.synthetic import ensure_benchmark, generate_benchmark, render_for_annotation
from xrg.data.synthetic import benchmark as bench

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _load(path: Path):
    return json.loads(path.read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_benchmark(tmp_path_factory.mktemp("synth") / "b", 10, seed=3, image_size=64)


def test_layout_is_r2gen_with_all_labels(small):
    annotation = _load(small / "annotation.json")
    assert [len(annotation[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    labels = _load(small / "labels.json")
    for split, items in annotation.items():
        for item in items:
            assert item["split"] == split and item["id"].startswith("synth_")
            assert item["image_path"] == [f"{item['id']}/0.png", f"{item['id']}/1.png"]
            assert len(item["report"].split()) >= 5
            for rel in item["image_path"]:
                image = Image.open(small / "images" / rel)
                assert image.mode == "L" and image.size == (64, 64)
            codes = labels[item["id"]]
            assert list(codes) == list(CHEXPERT_LABELS)
            assert set(codes.values()) <= {1, 0, -1, None}
    assert set(_load(small / "findings.json")) == set(labels)
    assert _load(small / "benchmark.json")["num_studies"] == 10


def test_single_view_is_frontal_only(tmp_path):
    out = generate_benchmark(tmp_path / "b", 3, image_size=48, views=1, split_fractions=(1.0, 0.0, 0.0))
    items = _load(out / "annotation.json")["train"]
    assert len(items) == 3 and all(len(item["image_path"]) == 1 for item in items)
    assert sorted(p.name for p in (out / "images" / items[0]["id"]).iterdir()) == ["0.png"]


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, small):
    again = generate_benchmark(tmp_path / "again", 10, seed=3, image_size=64, workers=2)
    assert _files(again) == _files(small)
    other = generate_benchmark(tmp_path / "other", 10, seed=4, image_size=64)
    assert _load(other / "annotation.json") != _load(small / "annotation.json")
    a = np.asarray(Image.open(small / "images" / "synth_000000" / "0.png"))
    b = np.asarray(Image.open(other / "images" / "synth_000000" / "0.png"))
    assert not np.array_equal(a, b)


def test_extra_training_studies_leave_the_benchmark_as_it_is(tmp_path, small):
    more = generate_benchmark(tmp_path / "more", 10, seed=3, image_size=64, extra_train_studies=5)
    plain, extended = _load(small / "annotation.json"), _load(more / "annotation.json")
    assert extended["val"] == plain["val"] and extended["test"] == plain["test"]
    assert extended["train"][:8] == plain["train"]  # the same studies, then the generator's next five
    assert [s["id"] for s in extended["train"][8:]] == [f"synth_{i:06d}" for i in range(10, 15)]
    assert all(_files(small)[f"images/{s['id']}/0.png"] == _files(more)[f"images/{s['id']}/0.png"]
               for s in plain["train"] + plain["test"])
    assert set(_load(more / "labels.json")) == {s["id"] for split in extended.values() for s in split}
    assert _load(more / "benchmark.json")["extra_train_studies"] == 5
    assert "extra_train_studies" not in _load(small / "benchmark.json")  # plain caches stay valid


def test_enriched_extra_studies_draw_the_finding_more_often_and_leave_the_benchmark_as_it_is(tmp_path, small):
    enriched = generate_benchmark(tmp_path / "enriched", 10, seed=3, image_size=64, extra_train_studies=60,
                                  extra_finding_rates={"fracture": 1.0})
    plain, extended = _load(small / "annotation.json"), _load(enriched / "annotation.json")
    assert extended["val"] == plain["val"] and extended["test"] == plain["test"]
    assert extended["train"][:8] == plain["train"]
    labels, own = _load(enriched / "labels.json"), _load(small / "labels.json")
    assert all(labels[i] == own[i] for i in own)  # the benchmark's own studies drawn at the base rates
    extra = [labels[f"synth_{i:06d}"] for i in range(10, 70)]
    abnormal = [row for row in extra if row["No Finding"] != 1]
    # every abnormal extra study has its rib fracture (at the base rate 0.05, 2 of ~36 would)
    assert len(abnormal) > 20 and all(row["Fracture"] == 1 for row in abnormal)
    assert _load(enriched / "benchmark.json")["extra_finding_rates"] == {"fracture": 1.0}


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="views"):
        generate_benchmark("/nonexistent", 2, views=3)
    with pytest.raises(ValueError, match="split_fractions"):
        generate_benchmark("/nonexistent", 2, split_fractions=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="extra_train_studies"):
        generate_benchmark("/nonexistent", 2, extra_train_studies=-1)
    with pytest.raises(ValueError, match="'fractures': expected one of cardiomegaly"):
        generate_benchmark("/nonexistent", 2, extra_train_studies=1, extra_finding_rates={"fractures": 0.3})
    with pytest.raises(ValueError, match="a probability in \\[0, 1\\], got 3"):
        generate_benchmark("/nonexistent", 2, extra_train_studies=1, extra_finding_rates={"fracture": 3})
    with pytest.raises(ValueError, match="set extra_train_studies too"):
        generate_benchmark("/nonexistent", 2, extra_finding_rates={"fracture": 0.3})


# ----------------------------------------------------------------------------------- caching
def test_ensure_benchmark_reuses_a_complete_benchmark(tmp_path, monkeypatch):
    root = ensure_benchmark(tmp_path / "cache", 4, seed=1, image_size=48)
    first = _files(root)

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated a cached benchmark")

    monkeypatch.setattr(bench, "generate_benchmark", must_not_run)
    assert ensure_benchmark(tmp_path / "cache", 4, seed=1, image_size=48, workers=2) == root
    monkeypatch.undo()
    # Different parameters: rebuilt in place.
    ensure_benchmark(tmp_path / "cache", 5, seed=1, image_size=48)
    assert len(_load(root / "labels.json")) == 5 and _files(root) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temp dirs left behind


def test_interrupted_generation_never_looks_complete(tmp_path, monkeypatch):
    root = ensure_benchmark(tmp_path / "cache", 3, image_size=48)
    before = _files(root)
    original = bench._write_outputs

    def crash_after_annotation(out, studies, splits, stamp):
        (out / "annotation.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "_write_outputs", crash_after_annotation)
    with pytest.raises(KeyboardInterrupt):
        ensure_benchmark(tmp_path / "cache", 6, image_size=48)
    assert _files(root) == before  # the old complete benchmark survives untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    monkeypatch.setattr(bench, "_write_outputs", original)
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(bench, "_write_outputs", crash_after_annotation)
        ensure_benchmark(tmp_path / "fresh", 2, image_size=48)
    assert not (tmp_path / "fresh").exists()


def test_ensure_benchmark_refuses_foreign_directories(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a synthetic benchmark"):
        ensure_benchmark(tmp_path / "mine", 2, image_size=48)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------- render mode
REPORTS = {
    "cxr1": ("The heart is enlarged. Small bilateral pleural effusions.", {"Cardiomegaly": 1, "Pleural Effusion": 1}),
    "cxr2": ("The lungs are clear. No pneumothorax.", {"No Finding": 1, "Pneumothorax": 0}),
    "cxr3": ("Endotracheal tube in place. Possible left lower lobe pneumonia.",
             {"Support Devices": 1, "Pneumonia": -1.0, "Edema": float("nan")}),
}


def _annotation(tmp_path: Path, reports=REPORTS) -> tuple[Path, Path]:
    ids = list(reports)
    annotation = {"train": [{"id": i, "report": reports[i][0], "image_path": [f"{i}/0.png", f"{i}/1.png"],
                             "split": "train"} for i in ids[:-1]],
                  "val": [], "test": [{"id": ids[-1], "report": reports[ids[-1]][0], "image_path": [], "split": "test"}]}
    (tmp_path / "annotation.json").write_text(json.dumps(annotation))
    (tmp_path / "labels.json").write_text(json.dumps({i: reports[i][1] for i in ids}))
    return tmp_path / "annotation.json", tmp_path / "labels.json"


def test_render_mode_pairs_real_text_with_phantoms_of_its_labels(tmp_path):
    annotation_path, labels_path = _annotation(tmp_path)
    out = render_for_annotation(annotation_path, labels_path, tmp_path / "out", image_size=48)
    annotation = _load(out / "annotation.json")
    assert [i["id"] for i in annotation["train"]] == ["cxr1", "cxr2"]
    assert annotation["test"][0]["report"] == REPORTS["cxr3"][0]
    assert annotation["test"][0]["image_path"] == ["cxr3/0.png", "cxr3/1.png"]
    assert (out / "images" / "cxr3" / "1.png").exists()
    labels = _load(out / "labels.json")
    assert labels["cxr3"]["Pneumonia"] == -1 and labels["cxr3"]["Edema"] is None
    assert list(labels["cxr1"]) == list(CHEXPERT_LABELS)
    findings = _load(out / "findings.json")
    assert findings["cxr1"]["cardiomegaly"] and findings["cxr1"]["effusion"]
    assert not findings["cxr2"]["cardiomegaly"] and not findings["cxr2"]["opacities"]
    assert findings["cxr3"]["devices"] and findings["cxr3"]["opacities"][0]["kind"] == "pneumonia"


def test_render_mode_on_real_iu_reports(tmp_path):
    iu = SHARED_DATA / "iu_xray" / "annotation.json"
    if not iu.exists():
        pytest.skip("shared IU X-Ray annotation not available")
    studies = _load(iu)["val"][:4]
    reports = {s["id"]: (s["report"], {"Cardiomegaly": 1 if "enlarged" in s["report"].lower() else None})
               for s in studies}
    annotation_path, labels_path = _annotation(tmp_path, reports)
    out = render_for_annotation(annotation_path, labels_path, tmp_path / "out", image_size=48, views=1)
    written = _load(out / "annotation.json")
    assert {i["report"] for split in written.values() for i in split} == {r for r, _ in reports.values()}


@pytest.mark.parametrize("labels, message", [
    ({"cxr1": {}, "cxr2": {}}, "no labels for study 'cxr3'"),
    ({"cxr1": {"Cardiomegally": 1}, "cxr2": {}, "cxr3": {}}, "unknown label 'Cardiomegally'"),
    ({"cxr1": {"Edema": 2}, "cxr2": {}, "cxr3": {}}, "'cxr1', label 'Edema'"),
    ({"cxr1": [1, 0], "cxr2": {}, "cxr3": {}}, "labels of study 'cxr1'"),
])
def test_render_mode_bad_labels_name_the_study_and_key(tmp_path, labels, message):
    annotation_path, labels_path = _annotation(tmp_path)
    labels_path.write_text(json.dumps(labels))
    with pytest.raises(DataError, match=message):
        render_for_annotation(annotation_path, labels_path, tmp_path / "out", image_size=48)


@pytest.mark.parametrize("annotation, message", [
    ([], "expected an object with 'train'"),
    ({"train": {"id": "x"}}, "'train' must be a list"),
    ({"train": [{"id": "cxr1"}]}, r"train\[0\]: expected an object with string 'id' and 'report'"),
    ({"train": [{"id": "../x", "report": "r"}]}, "cannot name an image folder"),
    ({"train": [{"id": "a", "report": "r"}], "test": [{"id": "a", "report": "r"}]}, "duplicate study id 'a'"),
])
def test_render_mode_malformed_annotation(tmp_path, annotation, message):
    annotation_path, labels_path = _annotation(tmp_path)
    annotation_path.write_text(json.dumps(annotation))
    with pytest.raises(DataError, match=message):
        render_for_annotation(annotation_path, labels_path, tmp_path / "out", image_size=48)


def test_render_mode_invalid_json_names_the_line(tmp_path):
    annotation_path, labels_path = _annotation(tmp_path)
    annotation_path.write_text('{"train": [\n  {"id": "a",, }]}')
    with pytest.raises(DataError, match="annotation.json: invalid JSON at line 2"):
        render_for_annotation(annotation_path, labels_path, tmp_path / "out")


# ----------------------------------------------------------------------------------------- CLI
def test_cli_synth_and_render(tmp_path, capsys):
    assert data_main(["synth", "--out", str(tmp_path / "s"), "--num-studies", "3", "--image-size", "48"]) == 0
    assert "3 studies in" in capsys.readouterr().out
    assert data_main(["synth", "--out", str(tmp_path / "t"), "--num-studies", "10", "--image-size", "48",
                      "--split-fractions", "0.5", "0", "0.5"]) == 0
    assert {k: len(v) for k, v in _load(tmp_path / "t" / "annotation.json").items()} == {"train": 5, "val": 0, "test": 5}
    annotation_path, labels_path = _annotation(tmp_path)
    args = ["render", "--annotation", str(annotation_path), "--labels", str(labels_path), "--out", str(tmp_path / "r"),
            "--image-size", "48", "--views", "1"]
    assert data_main(args) == 0
    assert len(_load(tmp_path / "r" / "labels.json")) == 3
    labels_path.write_text("{}")
    assert main(["data", *args]) == 2
    assert "no labels for study 'cxr1'" in capsys.readouterr().err


def test_datamodule_split_fractions_set_the_split_sizes(tmp_path):
    from xrg.data import ReportDataModule
    from xrg.data.datamodule import SyntheticBenchmark

    benchmark = SyntheticBenchmark(root=str(tmp_path / "b"), num_studies=20, image_size=48, split_fractions=(0.5, 0.1, 0.4))
    dm = ReportDataModule(synthetic=benchmark, image_size=32, resize=36)
    dm.prepare_data()
    dm.setup("fit")
    assert {split: len(dm.datasets[split]) for split in ("train", "val", "test")} == {"train": 10, "val": 2, "test": 8}
    # The first studies are the same whatever the total: a larger benchmark extends a smaller one.
    assert dm.datasets["train"].studies[0].id == "synth_000000"
