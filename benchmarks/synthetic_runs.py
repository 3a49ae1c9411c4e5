"""What the recipe benchmarks share: one synthetic benchmark, fitting a recipe on it, scoring a checkpoint.

Every benchmark that fits recipes on the embedded synthetic benchmark (trrg_synthetic.py,
radialog_synthetic.py, radalign_synthetic.py) takes the same data arguments (`add_data_args`), so
their numbers are on the same studies and the same test split and can be set side by side.
The default is 2,000 studies at 128 px split 0.5 / 0.1 / 0.4: the same 1,000 training studies as
the recipes' own benchmark, and an 800-study test split, large enough that a finding with a
prevalence of 4 % still has ~30 positives to score.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch

import xrg
from xrg.checkpoints import resolve_checkpoint
from xrg.cli import main
from xrg.data import ReportDataModule
from xrg.data.datamodule import SyntheticBenchmark
from xrg.data.jsonl import write_atomic
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.studies import ImagePreparation
from xrg.metrics.ce import label_texts, per_label_report
from xrg.metrics.report import ReportMetrics

REPO = Path(__file__).resolve().parents[1]
CE_AND_NLG = ("ce/chexpert-rules/macro14/f1", "ce/chexpert-rules/micro14/f1", "ce/chexpert-rules/macro5/f1",
              "nlg/bleu_4", "nlg/rouge_l", "nlg/cider")
AUC_KEYS = ("auc_mean", *(f"auc/{name}" for name in CHEXPERT_LABELS))


class Results(dict):
    """A benchmark's numbers, written to `out` at every `save()`, so a long run leaves them as it goes."""

    def __init__(self, out: str, settings: dict) -> None:
        super().__init__(settings=settings)
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        write_atomic(self.out, json.dumps(self, indent=1))  # a run killed mid-save keeps the last table

    def with_saved_runs(self) -> Results:
        """These results with the runs already in `out` kept, so a table grows one run at a time."""
        if self.out.exists():
            self.update({k: v for k, v in json.loads(self.out.read_text()).items() if k != "settings"})
        return self


def add_data_args(parser: argparse.ArgumentParser, image_size: int = 112, views: int = 2) -> None:
    parser.add_argument("--root", default=str(REPO / "data_cache" / "synthetic_eval"))
    parser.add_argument("--num-studies", type=int, default=2000)
    parser.add_argument("--benchmark-size", type=int, default=128, help="pixels of the generated benchmark's images")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=[0.5, 0.1, 0.4],
                        help="train/val/test shares (a large test share steadies per-finding metrics)")
    parser.add_argument("--image-size", type=int, default=image_size, help="crop fed to the models")
    parser.add_argument("--views", type=int, default=views, help="views per study fed to the models (the benchmark has 2)")


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its finished children (data loader workers)."""
    return sum(u.ru_utime + u.ru_stime for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))


def measured(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` and what it cost: CPU seconds of this process and its children (all
    threads) and wall seconds."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = fn(*args, **kwargs)
    return result, {"cpu_s": round(cpu_seconds() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1)}


def data_overrides(a) -> list[str]:
    """CLI overrides that point any synthetic recipe at the benchmark chosen by `add_data_args`."""
    return [f"--data.init_args.synthetic.root={a.root}", f"--data.init_args.synthetic.num_studies={a.num_studies}",
            f"--data.init_args.synthetic.image_size={a.benchmark_size}",
            f"--data.init_args.synthetic.split_fractions=[{','.join(map(str, a.split_fractions))}]",
            f"--data.init_args.image_size={a.image_size}", f"--data.init_args.resize={a.image_size + a.image_size // 8}",
            f"--data.init_args.max_views={a.views}"]


def datamodule(a, batch_size: int = 64, predict_split: str = "test",
               preparation: ImagePreparation | None = None) -> ReportDataModule:
    """The benchmark's studies; with a loaded checkpoint's `preparation`, its images prepared as its
    data module prepared its validation images (size, normalisation, detail channel, views: a fit may
    override `--image-size` and `--views`), else at `--image-size` and `--views` with xrg's defaults."""
    benchmark = SyntheticBenchmark(root=a.root, num_studies=a.num_studies, seed=0, views=2,
                                   image_size=a.benchmark_size, split_fractions=tuple(a.split_fractions))
    images = {"image_size": a.image_size, "resize": a.image_size + a.image_size // 8, "max_views": a.views}
    if preparation is not None:
        images = asdict(preparation)
    dm = ReportDataModule(synthetic=benchmark, **images, batch_size=batch_size, predict_split=predict_split)
    dm.prepare_data()
    dm.setup("test")
    return dm


def best_checkpoint(run: Path, since: float = 0.0) -> Path:
    """The newest `best-*.ckpt` under `run` (the ModelCheckpoint monitor's pick), else the newest
    `last*.ckpt`; only those written after `since` (a time.time())."""
    def written(pattern: str) -> list[Path]:
        return [p for p in run.rglob(pattern) if p.stat().st_mtime > since]
    return max(written("best-*.ckpt") or written("last*.ckpt"), key=lambda p: p.stat().st_mtime)


def fit(recipe: Path, run: Path, a, *extra: str) -> Path:
    """`xrg fit --config recipe` on the chosen benchmark, into `run`; returns its best checkpoint.

    A killed benchmark loses no finished work: the same fit (same arguments, recorded in
    `run/fit.json`) that ended before is not repeated, and one stopped part-way resumes from the
    `last.ckpt` it wrote (exactly: docs/robustness.md); their CPU seconds then count only what ran in
    this process, as the line printed says. Other arguments fit anew."""
    args = ["fit", "--config", str(recipe), *data_overrides(a), f"--trainer.default_root_dir={run}",
            "--trainer.enable_checkpointing=true", *extra]
    record = run / "fit.json"  # when this fit started: checkpoints older than that are another fit's
    before = json.loads(record.read_text()) if record.exists() else {}
    same = before.get("args") == args
    if same and before["finished"]:
        print(f"{run}: fitted before with these arguments, not again (its CPU seconds are not counted here)")
        return best_checkpoint(run, since=before["started"])
    resume = []
    if same and any(p.stat().st_mtime > before["started"] for p in run.rglob("last*.ckpt")):
        resume = [f"--ckpt_path={resolve_checkpoint(run)}"]  # its newest last.ckpt
        print(f"{run}: resuming the same fit from {resume[0].split('=', 1)[1]} (CPU seconds from here on)")
    else:
        run.mkdir(parents=True, exist_ok=True)
        before = {"args": args, "started": time.time()}
    write_atomic(record, json.dumps(before | {"finished": False}))
    main(args + resume)
    write_atomic(record, json.dumps(before | {"finished": True}))
    return best_checkpoint(run, since=before["started"])


DECODINGS = ({"num_beams": 1, "length_penalty": 0.0}, {"num_beams": 3, "length_penalty": 0.0},
             {"num_beams": 3, "length_penalty": 1.0}, {"num_beams": 5, "length_penalty": 1.0},
             {"num_beams": 3, "length_penalty": 0.0, "no_repeat_ngram_size": 3},
             {"num_beams": 3, "length_penalty": 0.0, "no_repeat_ngram_size": 4})


def choose_decoding(checkpoint: Path, a, candidates=DECODINGS, batch_size: int = 32) -> dict:
    """The decoding settings (attributes of the model's decoder) whose reports have the best CE
    macro-14 F1 on the validation split, chosen on what the reports state rather than on val loss;
    `{"chosen": settings, "val": [(settings, macro-14), ...]}`."""
    model = xrg.load(checkpoint)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    tried = []
    own = {name: getattr(model.decoder, name) for settings in candidates for name in settings}
    for settings in candidates:
        for name, value in (own | settings).items():  # each candidate from the recipe's own settings
            setattr(model.decoder, name, value)
        rows = [row for batch in trainer.predict(model, datamodule=datamodule(a, batch_size, "val", model.preparation)) for row in batch]
        metrics = ReportMetrics(meteor=False, nlg=False)
        metrics.update([row["generated"] for row in rows], [row["reference"] for row in rows])
        tried.append((settings, round(float(metrics.compute()["ce/chexpert-rules/macro14/f1"]), 4)))
    return {"chosen": max(tried, key=lambda t: t[1])[0], "val": tried}


def test_scores(checkpoint: Path, a, keys=CE_AND_NLG, batch_size: int = 32, per_finding: bool = False,
                decoding: dict | None = None) -> dict:
    """`trainer.test` of a checkpoint on the test split; the named metrics, rounded. With
    `per_finding`, the reports are generated by `trainer.predict` instead and scored by the same
    metrics, plus `per_finding`: each observation's CE F1 and support (uncertain as negative).
    `decoding` sets decoder attributes first (e.g. `choose_decoding`'s pick)."""
    model = xrg.load(checkpoint)
    for name, value in (decoding or {}).items():
        setattr(model.decoder, name, value)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    if not per_finding:
        (scores,) = trainer.test(model, datamodule=datamodule(a, batch_size, preparation=model.preparation), verbose=False)
        return {key: round(float(scores[f"test/{key}"]), 4) for key in keys if f"test/{key}" in scores}
    rows = [row for batch in trainer.predict(model, datamodule=datamodule(a, batch_size, preparation=model.preparation)) for row in batch]
    generated, references = [row["generated"] for row in rows], [row["reference"] for row in rows]
    metrics = ReportMetrics(meteor=False)
    metrics.update(generated, references)
    scores = metrics.compute()
    reference_labels = label_texts(references)
    table = per_label_report(label_texts(generated), reference_labels)
    per_finding = {name: {"f1": round(s["f1"], 4), "support": int(s["support"])} for name, s in table.items()}
    summary = {}
    if all("findings" in row for row in rows):  # a findings guide: what its head perceived, scored alike
        perceived = torch.tensor([[float(name in row["findings"]) for name in CHEXPERT_LABELS] for row in rows])
        head, told = per_label_report(perceived, reference_labels), per_label_report(label_texts(generated), perceived)
        for name in CHEXPERT_LABELS:
            # head_f1: what the head perceives; told_f1: how faithfully the report states what the
            # head told the decoder (the report scored against the head's decisions)
            per_finding[name] |= {"head_f1": round(head[name]["f1"], 4), "told_f1": round(told[name]["f1"], 4)}
        summary = {"head/macro14/f1": round(sum(s["f1"] for s in head.values()) / len(head), 4),
                   # over the observations the head decided present at least once
                   "told/macro/f1": round(sum(s["f1"] for s in told.values() if s["support"]) /
                                          max(1, sum(1 for s in told.values() if s["support"])), 4)}
    return {**{key: round(float(scores[key]), 4) for key in keys if key in scores}, **summary, "per_finding": per_finding}


def print_per_finding(rows: dict[str, dict]) -> None:
    """Each observation's CE F1, one column a run (the runs scored with `per_finding`)."""
    rows = {name: row for name, row in rows.items() if "per_finding" in row}
    if not rows:
        return
    print(f"\n{'CE F1 per finding':28s}" + "".join(f"{name[:22]:>24s}" for name in rows) + f"{'support':>9s}")
    print("(in brackets: the F1 of the findings head's own decisions, where the run has one)")
    for label in CHEXPERT_LABELS:
        cells = "".join(f"{row['per_finding'][label]['f1']:>16.3f}" + (f" ({row['per_finding'][label]['head_f1']:.3f})"
                        if "head_f1" in row["per_finding"][label] else " " * 8) for row in rows.values())
        print(f"{label:28s}{cells}{next(iter(rows.values()))['per_finding'][label]['support']:>9d}")


def print_auc(title: str, row: dict) -> None:
    """A classifier's test AUC: the mean, then one line a finding."""
    print(f"\n{title} ({row['fit']['cpu_s']} CPU s): test AUC mean {row.get('auc_mean')}")
    for key in AUC_KEYS[1:]:
        if key in row:
            print(f"  {key[4:]:28s} {row[key]:.3f}")


def print_rows(rows: dict[str, dict], keys=CE_AND_NLG) -> None:
    """One line a run: its metrics, then its fit CPU seconds."""
    print(f"{'':24s}" + "".join(f"{'/'.join(k.split('/')[-2:]):>16s}" for k in keys) + f"{'fit CPU s':>12s}")
    for name, row in rows.items():
        cost = row.get("fit", {}).get("cpu_s", float("nan"))
        print(f"{name:24s}" + "".join(f"{row.get(k, float('nan')):>16.4f}" for k in keys) + f"{cost:>12}")


def run_from_command_line(parser: argparse.ArgumentParser, name: str, run, print_table) -> None:
    """Parse (adding --workdir and --out), run, save, print: the tail of every recipe benchmark."""
    parser.add_argument("--workdir", default=f"runs/{name}_benchmark", help="where the runs' checkpoints and logs go")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / f"{name}_synthetic.json"))
    args = parser.parse_args()
    print_table(run(args))
    print(f"\nwrote {args.out}")
