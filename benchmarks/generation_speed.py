"""Report generation speed: plain `generate` against length-grouped batches, a static KV cache and a
compiled decode step, on the same model in the same process.

    python benchmarks/generation_speed.py [--device cpu|cuda] [--size small|large] [--studies 64]
        [--batch-size 8] [--max-new-tokens 48] [--repeats 3] [--no-compile] [--threads 1]

A random-initialised Llama (`small`: 4 layers x 256 wide and `medium`: 8 x 512, for a CPU; `large`:
TinyLlama-1.1B's shape, 22 x 2048, bfloat16, for a GPU) writes reports through `CausalLMDecoder.generate` for studies
mixed like RaDialog's inputs: 32 image slots, the predicted findings (0-6 names), an indication
(none for a third, else 2-11 complaints) and, for half of the studies, the prior study's report
(findings and impression of a synthetic study, 28-100 words, as long as MIMIC-CXR's), then the instruction, in Vicuna's chat format. Variants:

- plain:          the studies in their order, transformers' default dynamic KV cache
- grouped:        batches by `xrg.data.loader.LongestFirst` over the keys the data module uses
                  (`group_by_length`: views, characters of indication + prior report)
- static:         `cache_implementation: static`
- static+compile: `compile: true` as well (transformers' default CompileConfig, on any device)
- grouped+static+compile: the three together

Each variant runs one untimed pass (which, with compile, compiles: once per process, so the second
compiled variant reuses the first one's kernels; its seconds, CPU and wall, are recorded; inductor's
cache starts empty, `--keep-compile-cache` reuses the user's), then `--repeats` rounds time every
variant once each, in turn; the best pass counts. Times are CPU seconds of this process on a CPU (with
`--threads 1`: per core, steady on a shared machine) and wall seconds on a GPU. Every variant's
reports are compared with plain's, study for study. A random model seldom writes EOS, so most
reports run to `--max-new-tokens`: these figures are for outputs of equal length.
Writes benchmarks/results/generation_speed_<device>_<size>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xrg.blocks.decoders import CausalLMDecoder, PromptBuilder
from xrg.blocks.encoders.base import Features
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.jsonl import write_atomic
from xrg.data.loader import LongestFirst
from xrg.data.synthetic.findings import sample_findings
from xrg.data.synthetic.reports import write_report
from xrg.data.tokenizers import BPETokenizer

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4),
    "medium": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8),
    "large": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4),
}
IMAGE_SLOTS, MEMORY_DIM = 32, 768  # a Q-Former's 32 queries of BERT width (RaDialog)
TEMPLATE = ("Image information: <image:32>. Predicted Findings: {findings}. Indication: {indication}. "
            "Prior report: {prior_report}. You are to act as a radiologist and write the finding section of a "
            "chest x-ray radiology report for this X-ray image and the given predicted findings. Write in the style "
            "of a radiologist, write one fluent text without enumeration, be concise and don't provide explanations "
            "or reasons.")
COMPLAINTS = ("cough", "fever", "shortness of breath", "chest pain", "evaluate for pneumonia", "status post line placement",
              "follow up effusion", "trauma", "preoperative evaluation", "hypoxia", "rule out pneumothorax", "weakness")
VARIANTS = {  # name -> (grouped, cache_implementation, compile)
    "plain": (False, "dynamic", False),
    "grouped": (True, "dynamic", False),
    "static": (False, "static", False),
    "static+compile": (False, "static", True),
    "grouped+static+compile": (True, "static", True),
}


def studies(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        findings = list(rng.choice(CHEXPERT_LABELS[1:], size=rng.integers(0, 7), replace=False))
        indication = "" if rng.random() < 1 / 3 else " ".join(rng.choice(COMPLAINTS, size=rng.integers(2, 12)))
        prior = ""
        if rng.random() < 0.5:  # findings and impression: two wordings of one synthetic study (28-100 words)
            findings_of_prior = sample_findings(rng)
            prior = f"FINDINGS: {write_report(findings_of_prior, rng)[0]} IMPRESSION: {write_report(findings_of_prior, rng)[0]}"
        rows.append({"id": f"s{i:04d}", "findings": findings, "indication": indication, "prior_report": prior})
    return rows


def build_decoder(size: str, device: str, max_new_tokens: int, texts: list[str]) -> CausalLMDecoder:
    tokenizer = BPETokenizer(vocab_size=2000)
    tokenizer.fit(texts)
    torch.manual_seed(0)
    decoder = CausalLMDecoder(config={"model_type": "llama", **SIZES[size]}, tokenizer=tokenizer, memory_dim=MEMORY_DIM,
                              max_new_tokens=max_new_tokens, max_length=512,
                              dtype="bfloat16" if device == "cuda" else "float32")
    return decoder.to(device).eval()


class Recorder:
    """Counts what one pass generates (tokens up to EOS) and pads (prompt widths), by spying on the decoder."""

    def __init__(self, decoder: CausalLMDecoder) -> None:
        self.decoder, self.tokens, self.widths, self.real, self.cells = decoder, 0, [], 0, 0
        sequences, decode, eos = decoder._sequences, decoder.tokenizer.batch_decode, decoder.tokenizer.eos_id

        def recorded_sequences(memory, prompts, targets):
            seq = sequences(memory, prompts, targets)
            self.widths.append(seq.ids.shape[1])
            self.real += int(seq.attention_mask.sum())
            self.cells += seq.ids.numel()
            return seq

        def recorded_decode(ids):
            for row in torch.as_tensor(ids).tolist():
                self.tokens += row.index(eos) + 1 if eos in row else len(row)
            return decode(ids)

        decoder._sequences, decoder.tokenizer.batch_decode = recorded_sequences, recorded_decode

    def close(self) -> None:
        del self.decoder._sequences, self.decoder.tokenizer.batch_decode


def one_pass(decoder, memory: torch.Tensor, prompts: list[str], order: list[int], batch_size: int, device: str):
    """(reports by study index, seconds (see `timing`), wall seconds, tokens generated, prompt widths, share of prompt cells that pad)."""
    recorder = Recorder(decoder)
    reports = {}
    if device == "cuda":
        torch.cuda.synchronize()
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for first in range(0, len(order), batch_size):
        chosen = order[first : first + batch_size]
        tokens = memory[chosen]
        batch = Features(tokens, tokens.mean(1))
        for index, report in zip(chosen, decoder.generate(batch, [prompts[i] for i in chosen])):
            reports[index] = report
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start_wall
    seconds = wall if device == "cuda" else time.process_time() - start_cpu
    recorder.close()
    return reports, seconds, wall, recorder.tokens, recorder.widths, 1 - recorder.real / recorder.cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default=None, choices=list(SIZES), help="default: small on cpu, large on cuda")
    parser.add_argument("--studies", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: CPU seconds are per core)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled variants")
    parser.add_argument("--keep-compile-cache", action="store_true", help="reuse inductor's on-disk cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fresh_cache = None if args.keep_compile_cache else tempfile.mkdtemp(prefix="xrg_inductor_")
    if fresh_cache:  # the first compiled pass then shows what compiling costs
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = fresh_cache
    size = args.size or ("large" if args.device == "cuda" else "small")
    torch.set_num_threads(args.threads)

    rows = studies(args.studies, args.seed)
    builder = PromptBuilder(template=TEMPLATE, chat="vicuna", preset="radialog")
    prompts = [builder.build(**{k: row[k] for k in ("findings", "indication", "prior_report")}) for row in rows]
    texts = prompts + [write_report(sample_findings(np.random.default_rng(s)), np.random.default_rng(s))[0] for s in range(500)]
    decoder = build_decoder(size, args.device, args.max_new_tokens, texts)
    memory = torch.randn(len(rows), IMAGE_SLOTS, MEMORY_DIM, generator=torch.Generator().manual_seed(1))
    memory = memory.to(args.device)  # float32, as an encoder hands it over; the projection casts to the LLM dtype
    # The keys the data module sorts by (ReportDataset.prompt_lengths): one view, then the text it knows.
    lengths = [(1, len(row["indication"]) + len(row["prior_report"])) for row in rows]
    orders = {False: list(range(len(rows))), True: list(LongestFirst(lengths))}

    variants = {name: v for name, v in VARIANTS.items() if not (v[2] and args.no_compile)}

    def run(name: str):
        grouped, decoder.cache_implementation, decoder.compile = variants[name]
        return one_pass(decoder, memory, prompts, orders[grouped], args.batch_size, args.device)

    first = {}
    for name in variants:  # the untimed first passes, where compiling happens
        first[name] = run(name)
        print(f"{name}: first pass {first[name][1]:.2f} s ({first[name][2]:.0f} s wall)", flush=True)
    best = {name: None for name in variants}
    for _ in range(args.repeats):  # rounds of every variant, so a change in the machine's load hits them all
        for name in variants:
            result = run(name)
            if best[name] is None or result[1] < best[name][1]:
                best[name] = result
    results, baseline = [], best["plain"][0]
    for name, (reports, seconds, _, tokens, widths, padding) in best.items():
        results.append({"variant": name, "seconds": seconds, "first_pass_seconds": first[name][1],
                        "first_pass_wall_seconds": first[name][2], "reports_per_s": len(rows) / seconds,
                        "tokens_per_s": tokens / seconds, "tokens": tokens, "mean_prompt_width": sum(widths) / len(widths),
                        "prompt_padding_share": padding,
                        "reports_differing_from_plain": sum(reports[i] != baseline[i] for i in baseline)})
    plain = results[0]
    for row in results:
        row["speed_vs_plain"] = plain["seconds"] / row["seconds"]

    prompt_tokens = [len(decoder._prompt_ids(p, IMAGE_SLOTS)[0]) for p in prompts]
    setup = {"device": args.device, "size": size, "config": SIZES[size], "vocab": decoder.tokenizer.vocab_size,
             "dtype": str(decoder.dtype), "studies": len(rows), "batch_size": args.batch_size,
             "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "threads": args.threads,
             "prompt_tokens_min_mean_max": [min(prompt_tokens), sum(prompt_tokens) / len(prompt_tokens), max(prompt_tokens)],
             "timing": "wall s (cuda)" if args.device == "cuda" else "CPU s of this process",
             "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
             "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"generation_speed_{args.device}_{size}.json"
    write_atomic(out, json.dumps({"setup": setup, "results": results}, indent=1) + "\n")
    print(f"\n{size} Llama on {args.device}, {len(rows)} studies, batch {args.batch_size}, prompts "
          f"{min(prompt_tokens)}-{max(prompt_tokens)} tokens, {args.max_new_tokens} new tokens ({setup['timing']})")
    print("| variant | reports/s | tokens/s | x plain | mean padded prompt | padding | first pass s (wall) | reports differing |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['variant']} | {r['reports_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['speed_vs_plain']:.2f} | "
              f"{r['mean_prompt_width']:.0f} | {r['prompt_padding_share']:.0%} | {r['first_pass_seconds']:.1f} ({r['first_pass_wall_seconds']:.0f}) | "
              f"{r['reports_differing_from_plain']} |")
    print(f"wrote {out}")
    if fresh_cache:
        shutil.rmtree(fresh_cache, ignore_errors=True)


if __name__ == "__main__":
    main()
