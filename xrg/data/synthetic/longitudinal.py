"""Longitudinal pairs: a prior and a current study of one synthetic patient, whose report says what
changed, so a model can only word the change right by looking at the prior study.

Four findings are tracked (cardiomegaly, pleural effusion, pneumothorax, consolidation). For each
pair, each tracked finding is left out (half the time) or takes one of three courses with equal
odds: **new** (current only), **unchanged** (both) or **resolved** (prior only). Everything else
the prior shows persists into the current study unchanged and unremarked. The current report is
the usual report of the current findings followed by one comparison sentence per tracked finding
(`COMPARISON[course]`); the prior's report and images come with it as `prior` (the layout
`xrg data mimic-cxr` writes). Both studies share the patient's anatomy, as real follow-ups do.

    generate_longitudinal("data_cache/longitudinal", num_pairs=1000)   # built once, then reused
    # annotation.json (items with "prior"), images/<id>/{0,1}.png, images/<id>_prior/..., labels.json,
    # courses.json, longitudinal.json (the completion record)
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np

from xrg.data.cache import build_atomically
from xrg.data.synthetic.anatomy import sample_patient
from xrg.data.synthetic.benchmark import SPLITS, _split_of, encode_png
from xrg.data.synthetic.findings import SIDES, SIZES, SEVERITIES, Findings, sample_findings, sample_opacity
from xrg.data.synthetic.phantom import render_views
from xrg.data.synthetic.reports import write_report

TRACKED = ("cardiomegaly", "pleural effusion", "pneumothorax", "consolidation")
COURSES = ("new", "unchanged", "resolved")
COMPARISON = {"new": "The {name} is new.", "unchanged": "The {name} is unchanged.",
              "resolved": "The previously seen {name} has resolved."}
_STATED = re.compile(r"(?:the previously seen )?(?P<name>" + "|".join(TRACKED) + r") (?P<verb>is new|is unchanged|has resolved)")
_COURSE_OF_VERB = {"is new": "new", "is unchanged": "unchanged", "has resolved": "resolved"}


def stated_courses(report: str) -> dict[str, str]:
    """{tracked finding: course} as a report states them (the last statement wins)."""
    return {m["name"]: _COURSE_OF_VERB[m["verb"]] for m in _STATED.finditer(report.lower())}


def _clear_tracked(f: Findings) -> Findings:
    f.cardiomegaly, f.effusion, f.pneumothorax = None, {}, {}
    f.opacities = [o for o in f.opacities if o.kind != "consolidation"]
    return f


def _show(f: Findings, name: str, rng: np.random.Generator) -> None:
    if name == "cardiomegaly":
        f.cardiomegaly = str(rng.choice(SEVERITIES[:2]))
    elif name == "pleural effusion":
        f.effusion = {str(rng.choice(SIDES)): str(rng.choice(SIZES[1:]))}
    elif name == "pneumothorax":
        f.pneumothorax = {str(rng.choice(SIDES)): str(rng.choice(SIZES[1:]))}
    else:
        f.opacities.append(sample_opacity(rng, kind="consolidation"))


def sample_pair(rng: np.random.Generator) -> tuple[Findings, Findings, dict[str, str]]:
    """(prior findings, current findings, {tracked finding: course})."""
    prior = _clear_tracked(sample_findings(rng))
    prior.opacities = [o for o in prior.opacities if o.kind != "pneumonia"]  # pneumonia words consolidation
    current = copy.deepcopy(prior)
    courses = {name: str(rng.choice(COURSES)) for name in TRACKED if rng.random() < 0.5}
    for name, course in courses.items():
        if course == "new":
            _show(current, name, rng)
        else:
            _show(prior, name, rng)
            if course == "unchanged":
                _copy_tracked(prior, current, name)
    return prior, current, courses


def _copy_tracked(source: Findings, target: Findings, name: str) -> None:
    """An unchanged finding looks the same in both studies."""
    if name == "cardiomegaly":
        target.cardiomegaly = source.cardiomegaly
    elif name == "pleural effusion":
        target.effusion = dict(source.effusion)
    elif name == "pneumothorax":
        target.pneumothorax = dict(source.pneumothorax)
    else:
        target.opacities += [o for o in source.opacities if o.kind == "consolidation"]


def _write_views(folder: Path, images: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for view, pixels in enumerate(images):
        (folder / f"{view}.png").write_bytes(encode_png(pixels))
    return [f"{folder.name}/{view}.png" for view in range(len(images))]


RECORD = "longitudinal.json"


def generate_longitudinal(out_dir, num_pairs: int, seed: int = 0, *, image_size: int = 128, views: int = 2,
                          split_fractions=(0.7, 0.1, 0.2)) -> Path:
    """`out_dir` holding `num_pairs` prior/current pairs: reused when its record matches, otherwise
    built aside and renamed into place (`xrg.data.cache.build_atomically`), the record written last."""
    wanted = {"generator": "xrg.data.synthetic.longitudinal", "num_pairs": num_pairs, "seed": seed,
              "image_size": image_size, "views": views, "split_fractions": [float(x) for x in split_fractions]}
    return build_atomically(out_dir, wanted, lambda out: _write_pairs(out, wanted), RECORD,
                            what="synthetic longitudinal set")


def _write_pairs(out: Path, wanted: dict) -> None:
    annotation, labels, courses_by_id = {split: [] for split in SPLITS}, {}, {}
    size, views = wanted["image_size"], wanted["views"]
    for index, split in enumerate(_split_of(wanted["num_pairs"], wanted["split_fractions"])):
        rngs = np.random.SeedSequence([wanted["seed"], index]).spawn(3)
        findings_rng, report_rng, image_rng = (np.random.default_rng(s) for s in rngs)
        prior, current, courses = sample_pair(findings_rng)
        patient = sample_patient(image_rng)
        study_id = f"long_{index:06d}"
        prior_paths = _write_views(out / "images" / f"{study_id}_prior", render_views(patient, prior, size, views, image_rng))
        paths = _write_views(out / "images" / study_id, render_views(patient, current, size, views, image_rng))
        prior_report, _ = write_report(prior, report_rng)
        report, labels[study_id] = write_report(current, report_rng)
        comparison = " ".join(COMPARISON[c].format(name=n) for n, c in courses.items())
        courses_by_id[study_id] = courses
        annotation[split].append({"id": study_id, "report": f"{report} {comparison}".strip(), "image_path": paths,
                                  "split": split, "prior": {"id": f"{study_id}_prior", "report": prior_report,
                                                            "image_path": prior_paths}})
    for name, payload in (("labels.json", labels), ("courses.json", courses_by_id), ("annotation.json", annotation),
                          (RECORD, wanted)):
        (out / name).write_text(json.dumps(payload, indent=1))
