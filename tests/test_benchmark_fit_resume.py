"""benchmarks/synthetic_runs.py's `fit`: a benchmark killed part-way loses no finished work. The same
fit that ended is not repeated, one stopped part-way resumes from the last.ckpt it wrote, and a fit
with other arguments starts anew and never reads the checkpoints of the one before."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "synthetic_runs", Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_runs.py")
synthetic_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic_runs)


class Killed(Exception):
    pass


class FakeFit:
    """Stands in for `xrg fit`: writes best / last checkpoints per epoch into a new version folder,
    and dies after `die_after` epochs when asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.die_after: int | None = None

    def __call__(self, args: list[str]) -> None:
        self.calls.append(args)
        root = Path(next(a for a in args if a.startswith("--trainer.default_root_dir=")).split("=", 1)[1])
        version = root / "lightning_logs" / f"version_{len(list((root / 'lightning_logs').glob('version_*')))}"
        (version / "checkpoints").mkdir(parents=True)
        resumed = next((a.split("=", 1)[1] for a in args if a.startswith("--ckpt_path=")), None)
        start = int(Path(resumed).read_text()) if resumed else 0
        for epoch in range(start, 3):
            if self.die_after is not None and epoch == self.die_after:
                raise Killed
            (version / "checkpoints" / f"best-epoch={epoch}.ckpt").write_text(str(epoch + 1))
            (version / "checkpoints" / "last.ckpt").write_text(str(epoch + 1))


@pytest.fixture
def fake(monkeypatch):
    fake = FakeFit()
    monkeypatch.setattr(synthetic_runs, "main", fake)
    return fake


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    synthetic_runs.add_data_args(parser)
    return parser.parse_args([])


def test_a_finished_fit_is_not_repeated(fake, tmp_path):
    first = synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args(), "--seed_everything=0")
    again = synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args(), "--seed_everything=0")
    assert len(fake.calls) == 1 and again == first and first.read_text() == "3"


def test_a_killed_fit_resumes_from_its_last_checkpoint(fake, tmp_path):
    fake.die_after = 2
    with pytest.raises(Killed):
        synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args())
    fake.die_after = None
    best = synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args())
    resumed = fake.calls[-1][-1]
    assert resumed.startswith("--ckpt_path=") and resumed.endswith("version_0/checkpoints/last.ckpt")
    assert best.read_text() == "3"  # the resumed fit ran only its third epoch
    assert not list((tmp_path / "run" / "lightning_logs" / "version_1" / "checkpoints").glob("best-epoch=[01].ckpt"))


def test_other_arguments_fit_anew_and_ignore_the_old_checkpoints(fake, tmp_path):
    synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args(), "--seed_everything=0")
    fake.die_after = 0  # the new fit dies before writing anything
    with pytest.raises(Killed):
        synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args(), "--seed_everything=1")
    fake.die_after = None
    best = synthetic_runs.fit(Path("recipe.yaml"), tmp_path / "run", _args(), "--seed_everything=1")
    assert not any(a.startswith("--ckpt_path") for a in fake.calls[-1])  # seed 0's last.ckpt is not resumed
    assert "version_2" in str(best) and best.read_text() == "3"
