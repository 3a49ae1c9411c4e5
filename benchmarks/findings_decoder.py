"""Does the decoder state what the findings tokens say? The decoder alone, fed the true labels as tokens.

    python benchmarks/findings_decoder.py --rows default token_scale lr3e-3 ... --epochs 6

The transformer decoder of the findings-first writer learns from `PredictedFindings` tokens built
from each study's true labels (as `labels_in_training` builds them), with no image at all, and its
greedy reports on the validation split of synthetic_runs.py's benchmark are scored against the
references every epoch. What it reaches is the most a findings-first writer with this decoder can
state of what its head perceives; how fast it gets there is what a recipe's budget buys. One row a
decoder setting; the images are never decoded, so a row costs seconds an epoch.
"""

from __future__ import annotations

import argparse
import time

import torch
from synthetic_runs import REPO, Results, add_data_args, datamodule, run_from_command_line

from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders.base import Features
from xrg.blocks.findings import FindingsClassifier
from xrg.blocks.guides import Encoded, PredictedFindings
from xrg.data.loader import balancing_weights
from xrg.data.sentence_order import sentence_orderer
from xrg.data.tokenizers import WordTokenizer
from xrg.metrics.ce import label_texts, per_label_report

DEFAULT = {"token_scale": 0.02, "lr": 1e-3, "dropout": 0.1, "label_balance": 0.0,  # the recipe's settings
           "sentence_order": "as_written", "max_length": 60, "num_beams": 1, "no_repeat_ngram_size": 0}
BEST_BEFORE = {"token_scale": 1.0, "lr": 3e-3, "dropout": 0.0, "label_balance": 0.5}  # issue 17's first options
ROWS = {
    "default": {},
    "token_scale": {"token_scale": 1.0},
    "token_scale+lr3e-3": {"token_scale": 1.0, "lr": 3e-3},
    "token_scale+lr3e-3+dropout0": {"token_scale": 1.0, "lr": 3e-3, "dropout": 0.0},
    "token_scale+lr3e-3+dropout0+balance0.5": BEST_BEFORE,
    "+findings_first": BEST_BEFORE | {"sentence_order": "findings_first"},
    "+findings_first+balance1": BEST_BEFORE | {"sentence_order": "findings_first", "label_balance": 1.0},
    "+findings_first+max_length100": BEST_BEFORE | {"sentence_order": "findings_first", "max_length": 100},
    "+findings_first+max_length100+beams3+no_repeat3": BEST_BEFORE | {
        "sentence_order": "findings_first", "max_length": 100, "num_beams": 3, "no_repeat_ngram_size": 3},
}
WIDTH = 16  # the tokens' own width (the memory projection maps it to the decoder's)


def split_data(dm, split: str) -> tuple[list[str], torch.Tensor]:
    dataset = dm.datasets[split]
    return list(dataset.reports), torch.tensor([dataset.labels[s.id] for s in dataset.studies], dtype=torch.float32)


def label_tokens(guide: PredictedFindings, labels: torch.Tensor) -> Features:
    """The guide's tokens for these labels, exactly as it states them while training."""
    nothing = Features(torch.zeros(len(labels), 1, WIDTH), torch.zeros(len(labels), WIDTH))
    tokens = guide(Encoded({"labels": labels}, nothing, nothing, with_loss=False, training=True)).tokens
    return Features(tokens, tokens.mean(1))


def fit_row(settings: dict, a, train, val) -> list[dict]:
    torch.manual_seed(0)
    guide = PredictedFindings(FindingsClassifier(), tokens=True, token_scale=settings["token_scale"])
    guide.bind(WIDTH, WIDTH)
    decoder = TransformerDecoder(WordTokenizer(threshold=3), dim=128, heads=4, ffn_dim=256, encoder_layers=1,
                                 decoder_layers=2, dropout=settings["dropout"], max_length=settings["max_length"],
                                 num_beams=settings["num_beams"], no_repeat_ngram_size=settings["no_repeat_ngram_size"])
    reorder = sentence_orderer(settings["sentence_order"])  # as ReportDataModule(sentence_order) does
    train = ([reorder(r) for r in train[0]] if reorder else train[0], train[1])
    decoder.prepare(train[0])
    decoder.bind_memory(WIDTH)
    optimizer = torch.optim.AdamW([*decoder.parameters(), guide.states], lr=settings["lr"], weight_decay=1e-4)
    weights = balancing_weights(train[1], settings["label_balance"])
    references = label_texts(val[0])
    curve, cpu = [], time.process_time()
    generator = torch.Generator().manual_seed(0)
    for epoch in range(a.epochs):
        decoder.train()
        order = torch.multinomial(weights, len(weights), replacement=True, generator=generator) \
            if settings["label_balance"] else torch.randperm(len(weights), generator=generator)
        for batch in order.split(a.batch_size):
            loss = decoder.loss(label_tokens(guide, train[1][batch]), [train[0][i] for i in batch])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 0.1)  # the recipe's gradient_clip_val
            optimizer.step()
        decoder.eval()
        with torch.no_grad():
            generated = [text for part in val[1].split(100) for text in decoder.generate(label_tokens(guide, part))]
        table = per_label_report(label_texts(generated), references)
        curve.append({"epoch": epoch, "cpu_s": round(time.process_time() - cpu, 1),
                      "macro14": round(sum(s["f1"] for s in table.values()) / len(table), 4),
                      "per_finding": {name: round(s["f1"], 4) for name, s in table.items()}})
        print(f"  epoch {epoch}: val CE macro-14 {curve[-1]['macro14']:.3f} ({curve[-1]['cpu_s']} CPU s)", flush=True)
    return curve


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    results = Results(a.out, vars(a))
    dm = datamodule(a)
    dm.setup("fit")
    train, val = split_data(dm, "train"), split_data(dm, "val")
    for name in a.rows:
        print(name, flush=True)
        results[name] = {"settings": DEFAULT | ROWS[name], "curve": fit_row(DEFAULT | ROWS[name], a, train, val)}
        results.save()
    return results


def print_table(results: dict) -> None:
    rows = {name: row for name, row in results.items() if name != "settings"}
    epochs = max(len(row["curve"]) for row in rows.values())
    print(f"\n{'val CE macro-14 by epoch':42s}" + "".join(f"{e:>7d}" for e in range(epochs)) + f"{'CPU s':>9s}")
    for name, row in rows.items():
        print(f"{name:42s}" + "".join(f"{point['macro14']:>7.3f}" for point in row["curve"]) +
              f"{row['curve'][-1]['cpu_s']:>9}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(parser)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    run_from_command_line(parser, "findings_decoder", run, print_table)
