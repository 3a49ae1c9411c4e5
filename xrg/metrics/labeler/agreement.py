"""Agreement of a labeler with hand labels: F1 per (observation, class), then their macro mean.

Each observation of each report carries one of four codes: 1 positive, 0 negative, -1 uncertain,
None blank. For a class c of observation o, F1 is one-vs-rest over the reports (a report "is c"
when its code for o is c). The headline averages the F1 of every (observation, class) with at
least `min_support` hand-labeled reports, over the classes 1, 0 and -1 (blank is left out: it is
the easy "not mentioned" majority and would lift the mean).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from xrg.data.labels import CHEXPERT_LABELS

CLASSES = {1: "positive", 0: "negative", -1: "uncertain"}
Labels = Mapping[str, "int | None"]


def agreement(expected: Sequence[Labels], predicted: Sequence[Labels], min_support: int = 3) -> dict:
    """{"macro_f1", "cells": {(observation, class): {"p", "r", "f1", "support"}}} over the cells
    whose hand-label support is at least `min_support`."""
    if len(expected) != len(predicted):
        raise ValueError(f"got {len(expected)} hand-labeled reports but {len(predicted)} predicted")
    cells = {}
    for name in CHEXPERT_LABELS:
        truth = [row.get(name) for row in expected]
        guess = [row.get(name) for row in predicted]
        for code in CLASSES:
            support = truth.count(code)
            if support < min_support:
                continue
            true_pos = sum(t == code and g == code for t, g in zip(truth, guess))
            said = guess.count(code)
            cells[(name, code)] = {
                "p": true_pos / said if said else 0.0,
                "r": true_pos / support,
                "f1": 2 * true_pos / (support + said),
                "support": support,
            }
    macro = sum(cell["f1"] for cell in cells.values()) / len(cells) if cells else float("nan")
    return {"macro_f1": macro, "cells": cells}


def format_agreement(result: dict) -> str:
    """A markdown table: one row per observation, F1 (support) per class, '-' below min_support."""
    lines = ["| observation | positive | negative | uncertain |", "|---|---|---|---|"]
    for name in CHEXPERT_LABELS:
        row = [name]
        for code in CLASSES:
            cell = result["cells"].get((name, code))
            row.append(f"{cell['f1']:.3f} ({cell['support']})" if cell else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append(f"| **macro-F1 over {len(result['cells'])} cells** | | | **{result['macro_f1']:.3f}** |")
    return "\n".join(lines)
