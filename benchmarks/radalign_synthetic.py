"""RadAlign on the synthetic benchmark: concepts, retrieval, and the three report generators, at a stated CPU budget.

    python benchmarks/radalign_synthetic.py        # -> benchmarks/results/radalign_synthetic.json

1. concept alignment with the retriever (recipes/radalign/retrieval_synthetic.yaml): concept
   classifier test AUC per finding, and the retrieval-only baseline's test CE/NLG (the nearest
   training report is the generated one);
2. retrieval recall@k of that checkpoint: share of test studies whose top k retrieved training
   studies include one with exactly the query's set of positive findings (the query's own report
   cannot be retrieved, so paired recall does not apply);
3. the generation stage (recipes/radalign/generate_synthetic.yaml) from that checkpoint, prompted
   with concepts + retrieved reports, and with concepts only (`retriever: null`): test CE/NLG.
Data arguments are synthetic_runs.py's (default: 2,000 studies, 800 in the test split).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from synthetic_runs import (
    AUC_KEYS,
    CE_AND_NLG,
    REPO,
    Results,
    add_data_args,
    datamodule,
    fit,
    measured,
    print_auc,
    print_rows,
    run_from_command_line,
    test_scores,
)

import xrg

RECIPES = REPO / "recipes" / "radalign"


def positive_set(labels: torch.Tensor) -> tuple[int, ...]:
    return tuple((labels == 1).nonzero().flatten().tolist())


@torch.no_grad()
def label_match_recall(checkpoint: Path, a, ks=(1, 5, 10)) -> dict[str, float]:
    task = xrg.load(checkpoint).eval()
    dm = datamodule(a)
    train, test = dm.datasets["train"], dm.datasets["test"]
    train.transform = test.transform  # index keys from evaluation transforms, as the task builds them

    def embed(dataset):
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, collate_fn=dm.test_dataloader().collate_fn)
        ids, keys, labels = [], [], []
        for batch in loader:
            ids += batch["ids"]
            keys.append(task.concept_output(batch).pooled.float())
            labels.append(batch["labels"])
        return ids, torch.cat(keys), torch.cat(labels)

    train_ids, train_keys, train_labels = embed(train)
    task.retriever.build(train_ids, list(train.reports), train_keys)
    test_ids, test_keys, test_labels = embed(test)
    found = task.retriever(test_keys, exclude_ids=test_ids, k=max(ks))
    where = {study_id: i for i, study_id in enumerate(train_ids)}
    hits = torch.tensor([[positive_set(train_labels[where[r]]) == positive_set(query) for r in row]
                         for row, query in zip(found.ids, test_labels)])
    return {f"@{k}": round(hits[:, :k].any(1).float().mean().item(), 4) for k in ks}


def run(a) -> dict:
    work = Path(a.workdir)
    results = Results(a.out, vars(a))

    concepts, cost = measured(fit, RECIPES / "retrieval_synthetic.yaml", work / "concepts", a,
                              f"--trainer.max_epochs={a.concept_epochs}", *a.concept_set)
    scores, test_cost = measured(test_scores, concepts, a, (*AUC_KEYS, *CE_AND_NLG))
    results["concepts"] = {"fit": cost, "test": test_cost, "checkpoint": str(concepts), **scores}
    results["label_match_recall"] = label_match_recall(concepts, a)
    results.save()
    stage2 = [f"--trainer.max_epochs={a.generate_epochs}", f"--model.init_args.init_from.checkpoint={concepts}",
              *a.generate_set]
    # the concepts-only run drops the RetrievedReports guide and {retrieved} from the prompt
    template = ("Recognised findings with probabilities: {concepts}. You are a radiologist. Write the findings of "
                "this chest x-ray report, consistent with the recognised findings.")
    concepts_only = ["--model.init_args.guides=[" + yaml.safe_dump(generate_guides()[0], default_flow_style=True).strip() + "]",
                     f"--model.init_args.prompt.init_args.template={template}"]
    for name, extra in (("concepts_and_retrieval", []), ("concepts_only", concepts_only)):
        checkpoint, cost = measured(fit, RECIPES / "generate_synthetic.yaml", work / name, a, *stage2, *extra)
        scores, test_cost = measured(test_scores, checkpoint, a)
        results[name] = {"fit": cost, "test": test_cost, **scores}
        results.save()
    return results


def generate_guides() -> list[dict]:
    return yaml.safe_load((RECIPES / "generate_synthetic.yaml").read_text())["model"]["init_args"]["guides"]


def print_table(results: dict) -> None:
    print_auc("concept classifier", results["concepts"])
    print(f"retrieval label-match recall: {results['label_match_recall']}\n")
    names = ("concepts", "concepts_only", "concepts_and_retrieval")
    print_rows({("retrieval_only" if n == "concepts" else n): results[n] for n in names if n in results})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser, image_size=96, views=2)
    parser.add_argument("--concept-epochs", type=int, default=4)
    parser.add_argument("--generate-epochs", type=int, default=6)
    parser.add_argument("--concept-set", action="append", default=[], help="one extra CLI override (repeatable; --X-set=--key=value) for the concept stage")
    parser.add_argument("--generate-set", action="append", default=[], help="one extra CLI override (repeatable; --X-set=--key=value) for the generation stage")
    run_from_command_line(parser, "radalign", run, print_table)
