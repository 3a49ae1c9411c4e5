"""Where the Java tools that pycocoevalcap ships are found (Meteor 1.5, Stanford PTBTokenizer).

xrg reimplements BLEU, ROUGE-L and CIDEr-D, but METEOR and PTB tokenisation run the original
jars, so their scores are the reference ones by construction. The jars come with the optional
dependency ``pip install "xrg[eval]"`` (pycocoevalcap 1.2); ``XRG_METEOR_JAR`` /
``XRG_PTB_JAR`` point elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

METEOR_JAR = ("XRG_METEOR_JAR", "meteor/meteor-1.5.jar")
PTB_JAR = ("XRG_PTB_JAR", "tokenizer/stanford-corenlp-3.4.1.jar")


def java_executable() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("METEOR and PTB tokenisation need a Java runtime (`java` on PATH); none was found")
    return java


def find_jar(which: tuple[str, str]) -> Path:
    """The jar named by the environment variable, else the copy inside pycocoevalcap."""
    variable, relative = which
    if os.environ.get(variable):
        path = Path(os.environ[variable])
    else:
        spec = importlib.util.find_spec("pycocoevalcap")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                f"{relative} ships with pycocoevalcap: `pip install \"xrg[eval]\"` or set {variable}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise RuntimeError(f"{path} does not exist (set {variable} to the jar)")
    return path
