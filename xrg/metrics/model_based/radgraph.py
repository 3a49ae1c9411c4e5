"""RadGraph F1 (Delbrouck et al., 2022): agreement of entity/relation graphs of two reports.

A graph is RadGraph's annotation dict: {entity_id: {"tokens", "label", "relations": [[type, target_id], ...]}}.
Reward levels compare sets built from each graph:
- simple:   (tokens, label) per entity
- partial:  (tokens, label, has any relation) per entity
- complete: (tokens, label, {(relation type, target tokens, target label)}) per entity
F1 of the two sets per report (1 when both are empty, 0 when only one is), averaged over reports.
Graphs come from an extractor: any callable texts -> graphs (the RadGraph model, or
`TokenClassificationExtractor` for a transformers token-classification checkpoint).
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

from xrg.metrics.model_based._weights import resolve_weights

Graph = dict[str, dict]
RewardLevel = Literal["simple", "partial", "complete"]
LEVELS: tuple[RewardLevel, ...] = ("simple", "partial", "complete")
HINT = "Save a RadGraph-style token-classification model (BIO tags over ANAT-DP, OBS-DP, OBS-U, OBS-DA) to a folder and pass its path."


def graph_items(graph: Graph, level: RewardLevel) -> set:
    items = set()
    for entity in graph.values():
        key = (entity["tokens"], entity["label"])
        relations = entity.get("relations", [])
        if level == "simple":
            items.add(key)
        elif level == "partial":
            items.add((*key, bool(relations)))
        elif level == "complete":
            targets = frozenset((kind, graph[target]["tokens"], graph[target]["label"]) for kind, target in relations)
            items.add((*key, targets))
        else:
            raise ValueError(f"unknown reward level {level!r}; expected one of {LEVELS}")
    return items


def set_f1(hypothesis: set, reference: set) -> float:
    if not hypothesis and not reference:
        return 1.0
    overlap = len(hypothesis & reference)
    return 2 * overlap / (len(hypothesis) + len(reference))


def radgraph_f1(hypotheses: Sequence[Graph], references: Sequence[Graph]) -> dict[str, float]:
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypothesis graphs but {len(references)} references")
    n = max(len(references), 1)
    return {
        f"radgraph/{level}/f1": sum(set_f1(graph_items(h, level), graph_items(r, level)) for h, r in zip(hypotheses, references)) / n
        for level in LEVELS
    }


class RadGraphF1:
    """Extract graphs with `extractor`, then score every reward level."""

    def __init__(self, extractor: Callable[[list[str]], list[Graph]]) -> None:
        self.extractor = extractor

    def __call__(self, generated: list[str], references: list[str]) -> dict[str, float]:
        return radgraph_f1(self.extractor(list(generated)), self.extractor(list(references)))


class TokenClassificationExtractor:
    """Entities from a BIO token-classification model; it predicts no relations."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        path = resolve_weights(model, "RadGraph", HINT)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForTokenClassification.from_pretrained(path, local_files_only=True).eval().to(device)
        self.device = device

    def __call__(self, texts: list[str]) -> list[Graph]:
        import torch

        graphs = []
        for text in texts:
            words = text.split()
            batch = self.tokenizer(words, is_split_into_words=True, truncation=True, return_tensors="pt").to(self.device)
            with torch.no_grad():
                tags = self.model(**batch).logits[0].argmax(-1).tolist()
            word_tags: dict[int, str] = {}
            for position, word in enumerate(batch.word_ids()):
                if word is not None and word not in word_tags:  # first sub-token labels the word
                    word_tags[word] = self.model.config.id2label[tags[position]]
            graphs.append(_bio_to_graph(words, [word_tags.get(i, "O") for i in range(len(words))]))
        return graphs


def _bio_to_graph(words: list[str], tags: list[str]) -> Graph:
    graph: Graph = {}
    for index, (word, tag) in enumerate(zip(words, tags)):
        if tag.startswith("I-") and graph and graph[str(len(graph))]["label"] == tag[2:] and graph[str(len(graph))]["end_ix"] == index - 1:
            entity = graph[str(len(graph))]
            entity["tokens"] += f" {word}"
            entity["end_ix"] = index
        elif tag != "O":
            graph[str(len(graph) + 1)] = {"tokens": word, "label": tag[2:], "start_ix": index, "end_ix": index, "relations": []}
    return graph
