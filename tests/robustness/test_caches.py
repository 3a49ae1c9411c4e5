"""`kill -9` of `xrg data synth` while it builds: the cache it replaces survives whole, the next
build cleans up after it, and a cache whose record disagrees with the request is rebuilt."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from xrg.data.cli import main as data_main
from xrg.data.errors import DataError
from xrg.data.synthetic import ensure_benchmark


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _kill_synth_midway(out: Path, seed: int) -> None:
    """Run `xrg data synth` in a forked process (the real command, no interpreter start-up) and
    SIGKILL it once it has written some images of a large build."""
    process = multiprocessing.get_context("fork").Process(
        target=data_main, args=(["synth", "--out", str(out), "--num-studies", "2000", "--seed", str(seed),
                                 "--image-size", "48", "--views", "1"],))
    process.start()
    deadline = time.monotonic() + 120
    while not any(True for _ in out.parent.glob(f".{out.name}.tmp-*/images/*/0.png")):
        assert process.is_alive() and time.monotonic() < deadline, "synth ended before it could be killed"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_killed_synth_leaves_the_earlier_cache_whole_and_the_next_build_cleans_up(tmp_path):
    cache = tmp_path / "data_cache"
    root = ensure_benchmark(cache / "synthetic", 6, seed=0, image_size=48, views=1)
    before = _files(root)

    _kill_synth_midway(root, seed=1)  # overwriting a finished cache with another seed
    assert _files(root) == before  # the old benchmark, whole, under its own record
    assert len(_entries(cache)) == 2  # ... and the killed build's temporary folder

    # A run that finds the cache it wants removes what the killed builder left.
    assert ensure_benchmark(root, 6, seed=0, image_size=48, views=1) == root
    assert _entries(cache) == ["synthetic"]
    # A request the record disagrees with rebuilds it (here through the command).
    assert data_main(["synth", "--out", str(root), "--num-studies", "4", "--seed", "1", "--image-size", "48",
                      "--views", "1"]) == 0
    assert json.loads((root / "benchmark.json").read_text())["seed"] == 1
    assert len(json.loads((root / "labels.json").read_text())) == 4
    assert _entries(cache) == ["synthetic"]


def test_killed_first_build_leaves_nothing_a_later_fit_trips_on(tmp_path):
    cache = tmp_path / "data_cache"
    cache.mkdir()
    _kill_synth_midway(cache / "synthetic", seed=0)
    assert _entries(cache)[0].startswith(".synthetic.tmp-")  # no `synthetic` folder that looks usable
    root = ensure_benchmark(cache / "synthetic", 3, seed=0, image_size=48, views=1)
    assert _entries(cache) == ["synthetic"] and len(json.loads((root / "labels.json").read_text())) == 3


def test_a_folder_that_is_no_finished_build_is_refused_in_one_line(tmp_path):
    (tmp_path / "synthetic" / "images").mkdir(parents=True)
    (tmp_path / "synthetic" / "annotation.json").write_text("{}")
    with pytest.raises(DataError) as error:
        ensure_benchmark(tmp_path / "synthetic", 3, image_size=48)
    assert "no benchmark.json" in str(error.value) and "\n" not in str(error.value)
    assert (tmp_path / "synthetic" / "annotation.json").read_text() == "{}"
