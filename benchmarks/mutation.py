"""Mutation score of the task layer, decoders, guides and metrics (slow; not part of CI).

Needs cosmic-ray (`pip install cosmic-ray`; it mutates a copy of the source on disk, so Lightning's
frame inspection and jsonargparse's signatures see the code as written). Two modes:

    python benchmarks/mutation.py score --per-module 4 --seed 0
        For each module in SCOPE, a seeded sample of cosmic-ray's mutants is applied, one at a
        time, in a scratch copy of the repository. Each mutant runs the module's tests as they
        were before issue 19 ("before": the tests of BASE, the commit before its tests landed);
        a survivor then runs the tests added for issue 19 ("after"). A mutant is killed when a
        test fails or times out. Writes benchmarks/results/mutation.json and prints the kill
        rate per module, before and after.

    python benchmarks/mutation.py kinds
        The six mutations the issue names, each applied by string replacement in a scratch copy;
        records which tests fail (the test that names the behaviour must be among them).

Every test command runs `pytest -x`, so a killed mutant costs only up to its first failure. With 2
shared cores a full run (hundreds of mutants per module) takes days: sample, and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from xrg.data.jsonl import write_atomic

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BASE = "e59fe6ef3a05a627aafb36e69c4edddf5c65d915"  # main just before the issue-19 tests landed

# module -> (tests before issue 19, tests added for it); pytest node ids, `-k` given as "file::-k expr"
LEARN = "tests/tasks/test_report_guides_learn.py"
TASKS_LEARN = "tests/tasks/test_tasks_learn.py"
WIRING = "tests/tasks/test_report_task_wiring.py"
SCOPE: dict[str, tuple[list[str], list[str]]] = {
    "xrg/tasks/report_generation.py": ([f"{LEARN}::test_report_task_learns_with_each_guide[no guide]",
                                        f"{LEARN}::-k labels or logged", "tests/tasks/test_stage_init.py"],
                                       ["tests/tasks/test_explanation_rows.py", "tests/tasks/test_report_memory.py",
                                        f"{LEARN}::-k logged", WIRING]),
    "xrg/tasks/qformer_alignment.py": (["tests/blocks/test_contracts.py::-k qformer"],
                                       ["tests/blocks/test_qformer_losses.py", f"{TASKS_LEARN}::-k qformer",
                                        "tests/tasks/test_tasks_ddp.py"]),
    "xrg/blocks/aligners/qformer.py": (["tests/blocks/test_contracts.py::-k qformer"],
                                       ["tests/blocks/test_qformer_losses.py", f"{TASKS_LEARN}::-k qformer",
                                        f"{WIRING}::-k qformer"]),
    "xrg/tasks/contrastive.py": (["tests/tasks/test_contrastive.py"], [f"{TASKS_LEARN}::-k contrastive"]),
    "xrg/tasks/findings.py": (["tests/tasks/test_findings_labels.py", "tests/test_concepts.py"],
                              [f"{TASKS_LEARN}::-k findings or concept"]),
    "xrg/tasks/concept_alignment.py": (["tests/test_radalign_chain.py"], [f"{TASKS_LEARN}::-k concept",
                                                                         "tests/tasks/test_tasks_ddp.py"]),
    "xrg/blocks/decoders/transformer.py": (["tests/blocks/test_transformer_decoder.py"], ["tests/blocks/test_beam_search.py"]),
    "xrg/blocks/decoders/causal_lm.py": (["tests/blocks/test_causal_lm.py"], ["tests/blocks/test_beam_search.py"]),
    "xrg/blocks/guides/clues.py": (["tests/blocks/test_contracts.py::-k guide", f"{LEARN}::-k clues"],
                                   ["tests/tasks/test_explanation_rows.py"]),
    "xrg/blocks/guides/findings.py": (["tests/blocks/test_contracts.py::-k guide", f"{LEARN}::-k findings"],
                                      ["tests/tasks/test_explanation_rows.py",
                                       "tests/blocks/test_findings_guide_options.py::-k decision_tokens_state"]),
    "xrg/metrics/model_based/green.py": (["tests/metrics/test_model_based.py::-k green"], ["tests/metrics/test_green_judge.py"]),
}

# Environment of a module's test runs: the 2-process DDP test runs only the task kind mutated.
ENV = {"xrg/tasks/qformer_alignment.py": {"XRG_DDP_TASKS": "qformer_alignment"},
       "xrg/tasks/concept_alignment.py": {"XRG_DDP_TASKS": "concept_alignment"}}

# Mutants that cannot change behaviour: (module, text of the mutated line as the diff shows it) -> why
EQUIVALENT: dict[tuple[str, str], str] = {
    ("xrg/blocks/decoders/causal_lm.py", 'attn_implementation > "auto"'):
        'every accepted value ("sdpa", "eager", "flash_attention_2") sorts after "auto"',
    ("xrg/blocks/guides/clues.py", "consistency_weight > -1"):
        "with weight 0 the loss is computed and multiplied by 0: the same objective",
    ("xrg/tasks/report_generation.py", "if name is guide_name:"):
        "its one caller (RetrievedReports) passes the guide's own `name`, the very string object that keys "
        "`self.guides`: `is` and `==` agree",
}

# The six mutations of the issue: (name, file, text, replacement, tests that must catch it)
KINDS = [
    ("beam search turned greedy (k = 1), transformer", "xrg/blocks/decoders/transformer.py",
     "batch, k = encoded.shape[0], num_beams", "batch, k = encoded.shape[0], 1", ["tests/blocks/test_beam_search.py"]),
    ("beam search turned greedy (k = 1), causal LM", "xrg/blocks/decoders/causal_lm.py",
     'self.generation = {"num_beams": num_beams', 'self.generation = {"num_beams": 1', ["tests/blocks/test_beam_search.py"]),
    ("validation scores the references against themselves", "xrg/tasks/report_generation.py",
     'metrics.update(self.generate_reports(encoded), batch["reports"],',
     'metrics.update(batch["reports"] if prefix == "val" else self.generate_reports(encoded), batch["reports"],',
     [f"{LEARN}::-k logged"]),
    ("Q-Former stage loss multiplied by 0", "xrg/tasks/qformer_alignment.py",
     "total = sum(self.loss_weights[k] * v for k, v in losses.items())",
     "total = 0 * sum(self.loss_weights[k] * v for k, v in losses.items())",
     ["tests/blocks/test_qformer_losses.py", f"{TASKS_LEARN}::-k qformer"]),
    ("TRRG perceived probabilities under the wrong disease names", "xrg/blocks/guides/clues.py",
     "zip(names, row)", "zip(names[1:] + names[:1], row)", ["tests/tasks/test_explanation_rows.py"]),
    ("GREEN candidate and reference swapped on their way to the judge", "xrg/metrics/model_based/green.py",
     "self.scorer(list(references), list(generated))", "self.scorer(list(generated), list(references))",
     ["tests/metrics/test_green_judge.py"]),
    ("every image blanked before encoding", "xrg/blocks/encoders/base.py",
     "tokens, pooled = self.encode_images(images.flatten(0, 1))",
     "tokens, pooled = self.encode_images(images.flatten(0, 1) * 0)",
     [f"{LEARN}::test_report_task_learns_with_each_guide[no guide]", f"{TASKS_LEARN}::-k findings or qformer"]),
]


def scratch_copy(target: Path, tests_from: str | None = None) -> Path:
    """The committed tree of HEAD (tests from commit `tests_from` when given) in `target`."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(f"git -C {REPO} archive HEAD | tar -x -C {target}", shell=True, check=True)
    if tests_from is not None:
        shutil.rmtree(target / "tests")
        subprocess.run(f"git -C {REPO} archive {tests_from} tests | tar -x -C {target}", shell=True, check=True)
    return target


MODULE_ENV: dict[str, str] = {}  # ENV of the module being scored


def pytest(root: Path, arguments: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    """pytest run in `root` importing `root`'s xrg (None: it ran past `timeout`)."""
    env = {**os.environ, **MODULE_ENV, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments]
    try:
        return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def collect(root: Path, tests: list[str], timeout: float = 600) -> tuple[list[str], list[str]]:
    """(the test ids `tests` select, the entries that do not import). A `-k` differs per file, so it is
    resolved here, once: a mutant's tests then run in one pytest process (one import of torch and
    Lightning, not one per file). An old test file may no longer import against today's code (the
    "before" tests): it kills nothing, and is reported."""
    ids: list[str] = []
    broken = []
    for entry in tests:
        path, _, select = entry.partition("::-k ")
        done = pytest(root, ["--collect-only", path, *(["-k", select] if select else [])], timeout)
        if done is None or done.returncode not in (0, 2, 5):
            raise RuntimeError(f"{root}: collecting {entry} failed:\n{done and done.stdout[-2000:]}")
        if done.returncode == 2:
            broken.append(f"{entry} (does not import: " + (re.findall(r"^E +(.+)$", done.stdout, re.M) or ["?"])[-1] + ")")
        ids += [line for line in done.stdout.splitlines() if "::" in line and line not in ids]
    return ids, broken


def run_tests(root: Path, ids: list[str], timeout: float, first_failure: bool = True) -> tuple[bool, list[str]]:
    """(all passed, the failing test ids) of test ids `ids` run in `root`, by default up to the first failure.
    A collection error (a mutant that breaks an import) fails the run like a failing test."""
    if not ids:
        return True, []
    done = pytest(root, [*(["-x"] if first_failure else []), "-rf", *ids], timeout)
    if done is None:
        return False, ["(timed out)"]
    if done.returncode in (3, 4) and not re.search(r"ERROR collecting|found no collectors", done.stdout + done.stderr):
        # internal or usage error: not a test verdict (a test file that no longer imports is one: killed)
        raise RuntimeError(f"{root}: pytest did not run its tests:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    if done.returncode not in (0, 5):  # 5: nothing selected
        return False, re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - |$)", done.stdout, re.M) or [f"(exit {done.returncode})"]
    return True, []


def kinds(args) -> dict:
    root = scratch_copy(Path(args.scratch) / "kinds")
    found = []
    for name, file, text, replacement, tests in KINDS:
        if args.modules and not any(part in name for part in args.modules):
            continue
        path = root / file
        original = path.read_text()
        assert original.count(text) == 1, f"{file}: the text to mutate is not there once: {text!r}"
        ids, _ = collect(root, tests)
        path.write_text(original.replace(text, replacement))
        start = time.time()
        passed, failed = run_tests(root, ids, args.timeout)
        path.write_text(original)
        found.append({"mutation": name, "file": file, "caught": not passed, "failing_tests": failed,
                      "seconds": round(time.time() - start)})
        print(f"{'caught' if not passed else 'MISSED'}: {name}: {failed}", flush=True)
    return {"kinds": found}


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations are: never evaluated (`from __future__ import annotations`)."""
    import ast

    spans = []
    for node in ast.walk(ast.parse(source)):
        found = []
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in found]
    return spans


def mutants(module: str, root: Path) -> list:
    """cosmic-ray's mutants of `module`, less those inside type annotations (equivalent: never run)."""
    from cosmic_ray.commands.init import _all_work_items

    spans = annotation_spans((root / module).read_text())
    here = Path.cwd()
    os.chdir(root)
    try:
        found = [item.mutations[0] for item in _all_work_items([Path(module)], {})]
    finally:
        os.chdir(here)
    return [m for m in found if not any(start <= tuple(m.start_pos) < end for start, end in spans)]


def apply_and_test(spec, root: Path, tests: list[str] | None, timeout: float) -> tuple[bool | None, list[str], str]:
    """(killed, failing tests, diff) of one cosmic-ray mutant applied in `root`; killed is None for a
    mutant that does not compile (cosmic-ray's "incompetent": not counted)."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import use_mutation

    operator = cosmic_ray.plugins.get_operator(spec.operator_name)(**spec.operator_args)
    here = Path.cwd()
    os.chdir(root)
    try:
        with use_mutation(spec.module_path, operator, spec.occurrence) as (original, mutated):
            if mutated is None:
                return None, [], ""
            try:
                compile(mutated, str(spec.module_path), "exec")
            except SyntaxError:
                return None, [], "does not compile"
            diff = diff_of(original, mutated)
            if tests is None:  # only the diff is wanted
                return None, [], diff
            passed, failed = run_tests(root, tests, timeout)
            return not passed, failed, diff
    finally:
        os.chdir(here)


def baseline(root: Path, tests: list[str], timeout: float) -> tuple[list[str], list[str], float]:
    """(the test ids that pass on the unmutated tree, those that fail there, seconds of the run). A test
    failing without any mutant would count every mutant killed: it is left out of the mutants' runs."""
    ids, not_importing = collect(root, tests)
    start = time.time()
    _, broken = run_tests(root, ids, timeout, first_failure=False)
    return [i for i in ids if i not in broken], not_importing + broken, time.time() - start


def diff_of(original: str, mutated: str) -> str:
    return "; ".join(f"- {a.strip()}  ->  + {b.strip()}" for a, b in zip(original.splitlines(), mutated.splitlines()) if a != b)


def equivalent(module: str, diff: str) -> str | None:
    return next((why for (where, text), why in EQUIVALENT.items() if where == module and text in diff), None)


def score(args) -> dict:
    before_root = scratch_copy(Path(args.scratch) / "before", tests_from=BASE)
    after_root = scratch_copy(Path(args.scratch) / "after")
    modules = [m for m in SCOPE if not args.modules or any(part in m for part in args.modules)]
    report = read(args.output) if args.resume else {"per_module": args.per_module, "seed": args.seed, "modules": {}}
    for module in modules:
        rows = report["modules"].get(module, {}).get("sampled", [])
        if len(rows) >= args.per_module or report["modules"].get(module, {}).get("exhausted"):
            continue  # --resume: done; a module stopped part way continues with the mutants it lacks
        done = {(r["operator"], r["occurrence"]) for r in rows}
        MODULE_ENV.clear()
        MODULE_ENV.update(ENV.get(module, {}))
        old_tests, new_tests = SCOPE[module]
        # "after": today's tests of the module, the and the earlier ones as they are now
        runs = {"before": baseline(before_root, old_tests, args.timeout),
                "after": baseline(after_root, old_tests + new_tests, args.timeout)}
        old_tests, new_tests = runs["before"][0], runs["after"][0]
        # A mutant may make a test hang: one that runs past a few times the unmutated run counts as killed.
        limits = {k: max(args.min_timeout, 4 * v[2]) for k, v in runs.items()}
        population = mutants(module, after_root)
        # A seed per module: sampling one module draws the same mutants whichever modules run with it.
        order = random.Random(f"{args.seed}:{module}").sample(population, len(population))
        entry = {"mutants": len(population), "tests": {k: v[0] for k, v in runs.items()},
                 "failing_unmutated": {k: v[1] for k, v in runs.items()},
                 "seconds_unmutated": {k: round(v[2]) for k, v in runs.items()}, "sampled": rows}
        report["modules"][module] = entry
        while order and len(rows) < args.per_module:
            spec = order.pop()
            if (spec.operator_name, spec.occurrence) in done:
                continue
            start = time.time()
            killed_before, failed, diff = apply_and_test(spec, before_root, old_tests, limits["before"])
            if killed_before is None:
                continue  # does not compile: draw another
            killed_after, failed_after = killed_before, failed
            if not killed_before:
                killed_after, failed_after, diff = apply_and_test(spec, after_root, new_tests, limits["after"])
            rows.append({"operator": spec.operator_name, "occurrence": spec.occurrence, "in": spec.definition_name,
                         "line": spec.start_pos[0], "diff": diff, "killed_before": killed_before,
                         "killed_after": killed_after, "failing": failed_after, "seconds": round(time.time() - start)})
            print(f"{module}:{spec.start_pos[0]} {spec.operator_name} before={killed_before} after={killed_after} "
                  f"{diff}", flush=True)
            write(report, args.output)  # after every mutant: a stopped run resumes where it was
        entry["exhausted"] = not order
        write(report, args.output)
    return report


def rescore(args) -> dict:
    """The survivors of an earlier `score` run against today's tests (HEAD): tests written since to kill
    them are counted in "after". A survivor is found again by its module, operator and changed line,
    so edits elsewhere in the module do not lose it."""
    report = read(args.output)
    after_root = scratch_copy(Path(args.scratch) / "after")
    for module, entry in report["modules"].items():
        if args.modules and not any(part in module for part in args.modules):
            continue
        survivors = [r for r in entry["sampled"] if not r["killed_after"] and not equivalent(module, r["diff"])]
        if not survivors:
            continue
        MODULE_ENV.clear()
        MODULE_ENV.update(ENV.get(module, {}))
        tests, broken, seconds = baseline(after_root, SCOPE[module][0] + SCOPE[module][1], args.timeout)
        if broken:
            print(f"{module}: left out, failing without a mutant: {broken}", flush=True)
        limit = max(args.min_timeout, 4 * seconds)
        population = {}
        for spec in mutants(module, after_root):
            population.setdefault(spec.operator_name, []).append(spec)
        for row in survivors:
            found = None
            for spec in population.get(row["operator"], []):
                killed, failed, diff = apply_and_test(spec, after_root, None, limit)  # its diff only
                if diff == row["diff"]:
                    found = spec
                    break
            if found is None:
                row["rescored"] = "the mutated line is no longer in the module"
                continue
            row["killed_after"], row["failing"], _ = apply_and_test(found, after_root, tests, limit)
            row["rescored"] = time.strftime("%Y-%m-%d %H:%M")
            print(f"{module}:{row['line']} {row['operator']} after={row['killed_after']} {row['diff']}", flush=True)
        write(report, args.output)
    return report


def table(report: dict) -> str:
    lines = ["| module | mutants | sampled | equivalent | killed before | killed after |", "| --- | --- | --- | --- | --- | --- |"]
    totals = [0, 0, 0, 0, 0]
    for module, entry in report.get("modules", {}).items():
        rows = entry["sampled"]
        counted = [r for r in rows if not equivalent(module, r["diff"])]
        numbers = [entry["mutants"], len(rows), len(rows) - len(counted),
                   sum(r["killed_before"] for r in counted), sum(r["killed_after"] for r in counted)]
        totals = [a + b for a, b in zip(totals, numbers)]
        lines.append(f"| {module} | {numbers[0]} | {numbers[1]} | {numbers[2]} | {numbers[3]}/{len(counted)} | {numbers[4]}/{len(counted)} |")
    counted = totals[1] - totals[2]
    rate = (lambda k: f"{k}/{counted} ({100 * k / max(counted, 1):.0f} %)")
    lines.append(f"| total (non-equivalent) | {totals[0]} | {totals[1]} | {totals[2]} | {rate(totals[3])} | {rate(totals[4])} |")
    return "\n".join(lines)


def read(output: str) -> dict:
    return json.loads(Path(output).read_text())


def write(report: dict, output: str) -> None:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["score", "rescore", "kinds", "table"])
    parser.add_argument("--per-module", type=int, default=4, help="mutants sampled per module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modules", nargs="*", help="only modules (kinds) whose path (name) contains one of these")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest command of an unmutated run")
    parser.add_argument("--min-timeout", type=float, default=120,
                        help="a mutant's tests time out at 4x the unmutated run's seconds, and never under this")
    parser.add_argument("--resume", action="store_true", help="score: keep the modules already in --output")
    parser.add_argument("--scratch", default="/tmp/xrg-mutation")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    args.output = args.output or str(RESULTS / f"mutation_{'kinds' if args.mode == 'kinds' else 'score'}.json")
    report = {"kinds": kinds, "score": score, "rescore": rescore, "table": lambda a: read(a.output)}[args.mode](args)
    write(report, args.output)
    if args.mode != "kinds":
        print(table(report))


if __name__ == "__main__":
    main()
