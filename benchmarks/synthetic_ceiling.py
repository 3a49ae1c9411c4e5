"""The CE ceiling of the synthetic benchmark: reports written from the true findings, scored like a model's.

    python benchmarks/synthetic_ceiling.py     # -> benchmarks/results/synthetic_ceiling.json

The test split of the recipe benchmarks (synthetic_runs.py: 2,000 studies, split 0.5 / 0.1 / 0.4, so
800 test studies) is rebuilt from its seeds without rendering a pixel, and three writers that know
the truth produce a report per study. Each is scored against the reference exactly as a model is
(both texts cleaned with R2Gen's IU X-Ray cleaning, both labeled by `chexpert-rules`):

- **generator, new wording**: the generator's own writer on the study's true findings with a fresh
  wording seed. What is left is the labeler reading two phrasings of the same facts differently,
  and facts that only the wording decides (edema worded as "haziness" is also a Lung Opacity).
- **image oracle**: the same, but the choices the image cannot show are redrawn too: whether a
  pneumonia or an atelectasis is hedged, and whether a dense airspace opacity is called
  consolidation or pneumonia (they render alike). A model that perceives every finding perfectly
  and writes like the generator scores this in expectation; it is the ceiling a model can reach.
- **template from labels**: one fixed sentence per CheXpert code of the reference's labels
  (`TEMPLATES`): the labeler's reading of plain statements of the true labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_runs import REPO  # noqa: E402

from xrg.data.cleaning import clean_iu_xray  # noqa: E402
from xrg.data.jsonl import write_atomic  # noqa: E402
from xrg.data.labels import CHEXPERT_LABELS  # noqa: E402
from xrg.data.synthetic.benchmark import _split_of  # noqa: E402
from xrg.data.synthetic.findings import Findings, sample_findings  # noqa: E402
from xrg.data.synthetic.reports import write_report  # noqa: E402
from xrg.metrics.ce import ce_from_labels, label_texts, per_label_report  # noqa: E402

# (stated, negated, hedged) sentence per observation.
TEMPLATES = {
    "No Finding": ("No acute cardiopulmonary abnormality.", None, None),
    "Enlarged Cardiomediastinum": ("The mediastinum is widened.", "The mediastinal contours are normal.", None),
    "Cardiomegaly": ("There is cardiomegaly.", "The heart is normal in size.", None),
    "Lung Lesion": ("There is a pulmonary nodule.", "No pulmonary nodules.", None),
    "Lung Opacity": ("There is an airspace opacity.", "No focal airspace opacity.", None),
    "Edema": ("There is pulmonary edema.", "No pulmonary edema.", None),
    "Consolidation": ("There is focal consolidation.", "No focal consolidation.", None),
    "Pneumonia": ("There is pneumonia.", "No pneumonia.", "Pneumonia cannot be excluded."),
    "Atelectasis": ("There is atelectasis.", "No atelectasis.", "Streaky opacity which may reflect atelectasis."),
    "Pneumothorax": ("There is a pneumothorax.", "No pneumothorax.", None),
    "Pleural Effusion": ("There is a pleural effusion.", "No pleural effusion.", None),
    "Pleural Other": ("There is pleural thickening.", None, None),
    "Fracture": ("There is a rib fracture.", "No acute fracture.", None),
    "Support Devices": ("A central venous catheter is in place.", None, None),
}
_CODE_COLUMN = {1: 0, 0: 1, -1: 2}


def template_report(labels: dict) -> str:
    sentences = []
    for name in CHEXPERT_LABELS:
        code = labels.get(name)
        if code is not None and (sentence := TEMPLATES[name][_CODE_COLUMN[code]]):
            sentences.append(sentence)
    return " ".join(sentences)


def unseen_choices_redrawn(f: Findings, rng: np.random.Generator) -> Findings:
    """`f` with what the image cannot show redrawn from the generator's own rates (findings.py)."""
    opacities = []
    for o in f.opacities:
        kind = o.kind
        if kind != "opacity":  # consolidation and pneumonia render alike (density 0.9); 0.4 : 0.2
            kind = "pneumonia" if rng.random() < 1 / 3 else "consolidation"
        opacities.append(replace(o, kind=kind, hedged=kind == "pneumonia" and rng.random() < 0.75))
    atelectasis = [replace(a, hedged=bool(rng.random() < 0.3)) for a in f.atelectasis]
    return replace(f, opacities=opacities, atelectasis=atelectasis)


def test_studies(num_studies: int, seed: int, split_fractions) -> list[tuple[int, Findings, str, dict]]:
    """(index, findings, reference report, labels) of every test study, as the benchmark draws them."""
    studies = []
    for index, split in enumerate(_split_of(num_studies, split_fractions)):
        if split != "test":
            continue
        findings_rng, report_rng, _ = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(3))
        findings = sample_findings(findings_rng)
        report, labels = write_report(findings, report_rng)
        studies.append((index, findings, report, labels))
    return studies


def writers(studies, seed: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"generator, new wording": [], "image oracle": [], "template from labels": []}
    for index, findings, _, labels in studies:
        wording, oracle = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, index, 1]).spawn(2))
        out["generator, new wording"].append(write_report(findings, wording)[0])
        out["image oracle"].append(write_report(unseen_choices_redrawn(findings, oracle), oracle)[0])
        out["template from labels"].append(template_report(labels))
    return out


def score(generated: list[str], references: list[str]) -> dict:
    pred, ref = label_texts([clean_iu_xray(t) for t in generated]), label_texts([clean_iu_xray(t) for t in references])
    keys = ce_from_labels(pred, ref)
    return {"macro14": keys["ce/chexpert-rules/macro14/f1"], "micro14": keys["ce/chexpert-rules/micro14/f1"],
            "macro5": keys["ce/chexpert-rules/macro5/f1"],
            "per_label": {name: round(s["f1"], 4) for name, s in per_label_report(pred, ref).items()},
            "support": {name: int(s["support"]) for name, s in per_label_report(pred, ref).items()}}


def check_against_cache(root: Path, studies) -> None:
    """The rebuilt references equal the cached benchmark's annotation, when one is on disk."""
    path = root / "annotation.json"
    if not path.exists():
        return
    cached = {item["id"]: item["report"] for item in json.loads(path.read_text())["test"]}
    rebuilt = [report for _, _, report, _ in studies]
    if sorted(cached.values()) != sorted(rebuilt):
        raise SystemExit(f"{path}: its test reports differ from the rebuilt ones (another seed or generator version?)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-studies", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-fractions", type=float, nargs=3, default=[0.5, 0.1, 0.4])
    parser.add_argument("--check-root", default=str(REPO / "data_cache" / "synthetic_eval"), help="a cached benchmark to check against")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "synthetic_ceiling.json"))
    a = parser.parse_args()
    studies = test_studies(a.num_studies, a.seed, a.split_fractions)
    check_against_cache(Path(a.check_root), studies)
    references = [report for _, _, report, _ in studies]
    results = {"settings": vars(a), **{name: score(texts, references) for name, texts in writers(studies, a.seed).items()}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(a.out), json.dumps(results, indent=1))
    rows = {k: v for k, v in results.items() if k != "settings"}
    print(f"{'observation':28s}" + "".join(f"{name:>24s}" for name in rows) + f"{'support':>9s}")
    for label in CHEXPERT_LABELS:
        print(f"{label:28s}" + "".join(f"{r['per_label'][label]:>24.3f}" for r in rows.values())
              + f"{next(iter(rows.values()))['support'][label]:>9d}")
    for key in ("macro14", "micro14", "macro5"):
        print(f"{key:28s}" + "".join(f"{r[key]:>24.3f}" for r in rows.values()))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
