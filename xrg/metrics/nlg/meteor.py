"""METEOR 1.5 through the jar pycocoevalcap ships, in one long-lived process.

The command line and the text sent are pycocoevalcap 1.2's (and R2Gen's copy of it, which only
differs in opening the pipe in text mode): ``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en
-norm``; each pair is sent as ``SCORE ||| reference ||| hypothesis`` with ``|||`` removed from
the hypothesis and its first run of double spaces collapsed (one ``str.replace``); the corpus
score is the jar's answer to one ``EVAL`` line holding every pair's statistics, which is *not* the
mean of the per-pair scores. There is no truncation and no unknown-word handling in METEOR
itself: R2Gen's ``<unk>`` tokens and length cut come from decoding references from token ids in
its trainer, before scoring (see docs/metrics.md).

The one deliberate difference: newlines are replaced by spaces in both texts, because the
protocol is line based and a newline would desynchronise it (pycocoevalcap hangs or misreads).
"""

from __future__ import annotations

import atexit
import subprocess
import tempfile
import threading

import numpy as np

from xrg.metrics.nlg.java import METEOR_JAR, find_jar, java_executable


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


class MeteorProcess:
    """A Meteor 1.5 ``-stdio`` process, started on first use, closed at interpreter exit."""

    def __init__(self, memory: str = "2G") -> None:
        self.memory = memory
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            jar = find_jar(METEOR_JAR)
            self._stderr = tempfile.TemporaryFile()
            # The jar finds its paraphrase table relative to the working directory.
            self._process = subprocess.Popen(
                [java_executable(), "-jar", f"-Xmx{self.memory}", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"],
                cwd=jar.parent,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        return self._process

    def _read_line(self, process: subprocess.Popen) -> str:
        line = process.stdout.readline()
        if not line:
            self._stderr.seek(0)
            detail = self._stderr.read().decode("utf-8", "replace")[-2000:]
            raise RuntimeError(f"the Meteor process ended unexpectedly:\n{detail}")
        return line.strip()

    def score(self, hypotheses: list[str], references: list[str]) -> tuple[float, np.ndarray]:
        """Corpus METEOR and per-pair scores."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        lines = [
            f"SCORE ||| {_one_line(ref)} ||| {_one_line(hyp).replace('|||', '').replace('  ', ' ')}\n"
            for hyp, ref in zip(hypotheses, references)
        ]
        with self._lock:
            process = self._start()
            # Writing from a thread while reading here keeps both pipes flowing: writing all
            # lines first could fill the jar's output pipe and deadlock on long sets.
            writer = threading.Thread(target=self._write, args=(process, lines))
            writer.start()
            stats = [self._read_line(process) for _ in lines]
            writer.join()
            self._write(process, ["EVAL ||| " + " ||| ".join(stats) + "\n"])
            per_pair = np.array([float(self._read_line(process)) for _ in lines])
            corpus = float(self._read_line(process))
        return corpus, per_pair

    @staticmethod
    def _write(process: subprocess.Popen, lines: list[str]) -> None:
        process.stdin.writelines(lines)
        process.stdin.flush()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.kill()
            self._process.wait()
        self._process = None


_shared: MeteorProcess | None = None


def meteor_process() -> MeteorProcess:
    """The process shared by every METEOR score in this interpreter (the JVM starts once)."""
    global _shared
    if _shared is None:
        _shared = MeteorProcess()
    return _shared
