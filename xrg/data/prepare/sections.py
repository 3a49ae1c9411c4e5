"""Split a free-text radiology report into its sections, as the MIMIC-CXR authors' parser does.

A section starts at a line that begins with an upper-case header and a colon (`FINDINGS:`,
`IMPRESSION:`, `INDICATION:`); header spellings are folded onto a few canonical names (the same
folding the authors' `section_parser` applies: "FINDINGS AND IMPRESSION" counts as the impression,
"HISTORY" and "REASON FOR EXAM" as the indication). Text before the first header is the
`preamble` (MIMIC's "FINAL REPORT" line and the exam name). Whitespace inside a section is
collapsed to single spaces, the form R2Gen's annotations keep.
"""

from __future__ import annotations

import re

# Upper-case words (with the punctuation headers use) ending in a colon, at the start of a line.
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&(),-]*[A-Z)])[ \t]*:", re.MULTILINE)

CANONICAL = {
    "findings": ("FINDINGS", "FINDING", "FINDINGS AND COMMENT"),
    "impression": ("IMPRESSION", "IMPRESSIONS", "CONCLUSION", "FINDINGS AND IMPRESSION",
                   "FINDINGS/IMPRESSION", "IMPRESSION AND RECOMMENDATION", "SUMMARY"),
    "indication": ("INDICATION", "INDICATIONS", "HISTORY", "CLINICAL HISTORY", "CLINICAL INDICATION",
                   "CLINICAL INFORMATION", "REASON FOR EXAM", "REASON FOR EXAMINATION", "REASON FOR STUDY"),
    "comparison": ("COMPARISON", "COMPARISONS", "PRIOR", "PRIOR STUDIES"),
    "technique": ("TECHNIQUE", "EXAMINATION", "EXAM", "PROCEDURE", "STUDY"),
}
_CANONICAL_OF = {spelling: name for name, spellings in CANONICAL.items() for spelling in spellings}


def canonical_name(header: str) -> str:
    """The canonical section name of a header; unknown headers keep their own lower-cased name."""
    header = " ".join(header.split()).upper()
    return _CANONICAL_OF.get(header, header.lower())


def split_sections(text: str) -> dict[str, str]:
    """{canonical section name: collapsed text}; `preamble` holds what precedes the first header.

    A section that appears twice (an addendum repeating IMPRESSION) keeps both texts, joined.
    """
    sections: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    bounds = [(None, 0, matches[0].start() if matches else len(text))]
    bounds += [(m.group(1), m.end(), nxt.start() if nxt else len(text))
               for m, nxt in zip(matches, [*matches[1:], None])]
    for header, start, end in bounds:
        name = "preamble" if header is None else canonical_name(header)
        body = " ".join(text[start:end].split())
        if body:
            sections[name] = f"{sections[name]} {body}" if name in sections else body
    return sections


def report_section(sections: dict[str, str], which: str) -> str:
    """The report text a dataset keeps: `findings`, `impression`, or `findings+impression`
    (the findings, then the impression, whichever exist)."""
    names = which.split("+")
    unknown = set(names) - {"findings", "impression"}
    if unknown:
        raise ValueError(f"section must be findings, impression or findings+impression, got {which!r}")
    return " ".join(sections[name] for name in names if sections.get(name))
