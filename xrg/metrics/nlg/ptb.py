"""COCO-style tokenisation: Stanford PTBTokenizer (CoreNLP 3.4.1, ``-lowerCase``) then the
removal of punctuation tokens, as pycocoevalcap's ``PTBTokenizer`` does before COCOEvalCap scores.

This is the *other* convention (the one captioning papers use). R2Gen-style scores skip it and
score cleaned text directly, keeping "." as a token; see docs/metrics.md.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from xrg.metrics.nlg.java import PTB_JAR, find_jar, java_executable

# pycocoevalcap's list, including "'" and "-" tokens; anything else stays.
PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}


def ptb_tokenize(texts: list[str]) -> list[str]:
    """One tokenised, lowercased, punctuation-free string per text (one JVM call for all)."""
    if not texts:
        return []
    jar = find_jar(PTB_JAR)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "texts.txt")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(text.replace("\n", " ") for text in texts))
        command = [java_executable(), "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", path]
        output = subprocess.run(command, capture_output=True, check=True).stdout.decode("utf-8")
    lines = output.split("\n")
    return [" ".join(word for word in line.rstrip().split(" ") if word not in PUNCTUATION) for line in lines[: len(texts)]]
