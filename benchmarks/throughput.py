"""Training and generation throughput, memory and FLOPs utilisation of every paper-size recipe.

The models are random stand-ins of the papers' exact architectures (`xrg.standins`, size "paper":
the widths, heads and vocabularies of Vicuna-7B / Llama-2-7B, BERT-base, ViT-B/16, ResNet-101,
CLIP RN101 and BioViL-T, written out, no download), at `--depth` blocks per stack (LLM / BERT /
ViT layers, ResNet blocks per stage; BioViL-T's ResNet-50 and CLIP's text layers stay whole). The
recipe runs as written, through the same `xrg fit` code path, with its own precision (bf16-mixed:
CPU autocast here), blocks and batch size (2 on a CPU, `--batch-size`); only the hardware, the step
count and the data change.

    python benchmarks/throughput.py                        # CPU, depth 2, every paper-size recipe
    python benchmarks/throughput.py --device cuda --depth 8
    python benchmarks/throughput.py --recipes radialog/llm.yaml trrg/stage2_mimic_cxr.yaml
    python benchmarks/throughput.py --memory-table         # 7B LoRA stages: the estimate only

Each recipe runs in its own process (its memory is its own): `--warmup` untimed steps, `--steps`
timed ones (forward + backward + optimiser; the data loader excluded; batches not accumulated; the
first warm-up step runs under torch's FlopCounterMode), then one generation batch (`trainer.predict`,
the recipe's decoding settings; random weights rarely stop early, so reports run to the length
limit, which `--max-new-tokens` caps for an LLM: 16 on a CPU).
Reported per recipe: samples/s and decoder tokens/s (non-pad positions the decoder reads: prompt,
image slots and report), peak memory (CPU: resident-set growth over the process before the model
was built, sampled every 10 ms; GPU: `torch.cuda.max_memory_allocated`), FLOPs per step as counted
(matrix products and convolutions, activation-checkpoint recomputation included) and the
utilisation they give against a peak: on a CPU the bf16/fp32 matrix-product rate measured in the
same process, on a GPU the vendor's dense bf16 figure (`GPU_PEAK`; the measured rate is kept too).

The 7B LoRA stages (RaDialog stages 3-4, TRRG stage 2) also get `lora_memory_estimate` evaluated at
the run's own configuration (depth, batch, padded length) beside the measured peak; `--memory-table`
evaluates it at full depth over batch sizes and sequence lengths (docs/performance.md).

Writes benchmarks/results/throughput_<device>_depth<N>.json (and lora_memory_table.json) and prints the tables. Stand-ins and the
synthetic data are kept under --work (data_cache/throughput: ~6 GB at depth 2).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from xrg.data.jsonl import write_atomic

REPO = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peaks (no sparsity) from the vendors' data sheets, by device-name fragment.
GPU_PEAK = {"H200": 989e12, "H100 SXM": 989e12, "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 756e12,
            "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165e12}
LLAMA_TARGET_SHAPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def paper_size_recipes() -> list[Path]:
    """test_recipes.PAPER_SIZE: not synthetic, not a CPU-size recipe, not an overlay (strategies,
    schedules, data: a second --config, not a recipe)."""
    overlays = {p for folder in ("strategies", "schedules", "data") for p in (REPO / "recipes" / folder).glob("*.yaml")}
    recipes = sorted(set((REPO / "recipes").rglob("*.yaml")) - overlays)
    return [r for r in recipes if "synthetic" not in r.name and "accelerator: cpu" not in r.read_text()]


# --- the memory estimate of a LoRA-trained LLM stage ------------------------------------------------
def lora_memory_estimate(llm: dict, lora_r: int, lora_targets, batch: int, seq: int, *, other_frozen_bytes: int = 0,
                         other_trainable: int = 0, checkpointing: bool = True) -> dict[str, float]:
    """Bytes of one training step of a Llama-family LLM with a bf16 frozen base and fp32 LoRA.

    - base weights: bf16, 2 bytes per parameter (untied embedding and head included);
    - trainable parameters (LoRA, and the stage's other trained blocks): fp32 weight, gradient and
      Adam's two moments, 16 bytes each;
    - other frozen blocks: as given (their bytes as loaded);
    - activations per token (bf16 autocast, SDPA): with checkpointing each layer keeps its input
      (2d bytes) and one layer at a time is recomputed with everything its backward needs
      (~ 44d + 10ff bytes: two RMSNorms kept in fp32, q/k/v/attention output, LoRA dropout copies,
      the four MLP tensors, their gradients in flight); without it every layer keeps the latter;
    - logits: B x T x V x 14 bytes (bf16 logits, their fp32 copy, fp32 log-softmax, fp32 gradient).
    Image-side activations (a trained image encoder, a Q-Former) are not included.
    """
    d, ff, vocab, layers = llm["hidden_size"], llm["intermediate_size"], llm["vocab_size"], llm["num_hidden_layers"]
    heads = llm["num_attention_heads"]
    kv = d * llm.get("num_key_value_heads", heads) // heads
    shapes = dict(zip(LLAMA_TARGET_SHAPES, ((d, d), (d, kv), (d, kv), (d, d), (d, ff), (d, ff), (ff, d))))
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * ff + 2 * d
    base = 2 * vocab * d + layers * per_layer + d
    lora = layers * sum(lora_r * sum(shapes[t]) for t in lora_targets)
    tokens = batch * seq
    working = 44 * d + 10 * ff
    parts = {
        "base_weights": 2.0 * base,
        "other_frozen": float(other_frozen_bytes),
        "trainable_with_adam": 16.0 * (lora + other_trainable),
        "activations": float(tokens * (2 * d * layers + working) if checkpointing else tokens * layers * working),
        "logits": 14.0 * tokens * vocab,
    }
    parts["total"] = sum(parts.values())
    parts["lora_parameters"], parts["base_parameters"] = float(lora), float(base)
    return parts


# --- measuring one recipe (a process of its own) --------------------------------------------------
def matmul_rate(device: str, dtype, seconds: float = 0.5) -> float:
    """Matrix-product FLOP/s this process reaches (square products, the size a step's large GEMMs have)."""
    import torch

    n = 4096 if device == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if device == "cuda":
            sync(device)
    sync(device)
    return 2 * n**3 * count / (time.perf_counter() - start)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakRSS:
    """The process's largest resident set while running, sampled by a thread."""

    def __init__(self, every: float = 0.01) -> None:
        self.peak, self.every, self._stop = rss(), every, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss())


def decoder_embedding(task):
    decoder = getattr(task, "decoder", None)
    if decoder is None:
        return None, None
    if getattr(decoder, "llm", None) is not None:
        return decoder.llm.get_input_embeddings(), decoder.tokenizer.pad_id
    embed = getattr(decoder, "embed", None)
    return embed, decoder.tokenizer.pad_id if embed is not None else None


def block_bytes(task) -> dict:
    """Parameter counts and bytes per top-level block, trainable and frozen; the LLM's apart."""
    blocks: dict[str, dict] = {}
    for name, p in task.named_parameters():
        block = "llm" if ".llm." in f".{name}" else name.split(".")[0]
        entry = blocks.setdefault(block, {"trainable": 0, "frozen": 0, "trainable_bytes": 0, "frozen_bytes": 0})
        kind = "trainable" if p.requires_grad else "frozen"
        entry[kind] += p.numel()
        entry[f"{kind}_bytes"] += p.numel() * p.element_size()
    return blocks


def measure(recipe_path: str, args) -> dict:
    import lightning as L
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import xrg
    from xrg.lightning_cli import XrgCLI

    device = args.device
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    precision = "bf16-mixed" if "bf16-mixed" in Path(recipe_path).read_text() else "32-true"
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    peak_rate = matmul_rate(device, dtype)
    gc.collect()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline = rss()
    warmup, steps = args.warmup, args.steps
    flop_step = 0  # the first step: untimed (lazy set-up, optimiser state), its FLOPs as every step's
    hardware = [
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1",
        f"--trainer.max_steps={warmup + steps}", "--trainer.accumulate_grad_batches=1", "--trainer.limit_val_batches=0",
        "--trainer.num_sanity_val_steps=0", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
        "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.limit_predict_batches=1", "--trainer.default_root_dir", str(Path(args.work) / "runs"),
        "--data.init_args.num_workers=0", "--data.init_args.persistent_workers=false",
        *([f"--data.init_args.batch_size={args.batch_size}"] if args.batch_size else []),
        f"--data.init_args.pin_memory={'true' if device == 'cuda' else 'false'}",
    ]
    cli = XrgCLI(model_class=xrg.tasks.XrgTask, datamodule_class=xrg.data.ReportDataModule, subclass_mode_model=True,
                 subclass_mode_data=True, args=["--config", recipe_path, *hardware], run=False,
                 auto_configure_optimizers=False, save_config_kwargs={"overwrite": True})
    task, trainer, datamodule = cli.model, cli.trainer, cli.datamodule
    result: dict = {"precision": precision, "batch_size": datamodule.hparams.batch_size,
                    "matmul_flops_per_s": peak_rate}

    class Meter(L.Callback):
        def __init__(self) -> None:
            self.times, self.cpu, self.tokens, self.shape, self.counting = [], [], [], (0, 0), False
            self.flops = None

        def count(self, module, inputs, output) -> None:
            if self.counting and inputs and torch.is_tensor(inputs[0]) and inputs[0].dim() == 2:
                ids = inputs[0]
                self.tokens[-1] += int((ids != self.pad).sum())
                self.shape = max(self.shape, tuple(ids.shape))

        def on_train_start(self, trainer, task) -> None:
            sync(device)
            result["memory_before_steps"] = (torch.cuda.memory_allocated() if device == "cuda" else rss() - baseline)
            result["parameters"] = block_bytes(task)
            self.rss = PeakRSS()
            embedding, self.pad = decoder_embedding(task)  # built in setup, with the vocabulary
            if embedding is not None:
                embedding.register_forward_hook(self.count)

        def on_train_batch_start(self, trainer, task, batch, batch_idx) -> None:
            sync(device)
            self.counting = batch_idx >= warmup
            if self.counting:
                self.tokens.append(0)
            if batch_idx == flop_step:
                self.flops = FlopCounterMode(display=False)
                self.flops.__enter__()
            self.start, self.start_cpu = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, task, outputs, batch, batch_idx) -> None:
            sync(device)
            if batch_idx >= warmup:
                self.times.append(time.perf_counter() - self.start)
                self.cpu.append(time.process_time() - self.start_cpu)
            if batch_idx == flop_step:
                self.flops.__exit__(None, None, None)
            self.counting = False
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            result["loss"] = float(loss)

        def on_train_end(self, trainer, task) -> None:
            result["peak_memory"] = (torch.cuda.max_memory_allocated() if device == "cuda" else self.rss.stop() - baseline)

    meter = Meter()
    trainer.callbacks.append(meter)
    trainer.fit(task, datamodule=datamodule)
    step = sum(meter.times) / len(meter.times)
    batch = result["batch_size"]
    flops = meter.flops.get_total_flops() if meter.flops is not None else 0
    peak = GPU_PEAK.get(next((k for k in GPU_PEAK if k in torch.cuda.get_device_name()), ""), peak_rate) if device == "cuda" else peak_rate
    result.update({
        "step_seconds": step, "step_cpu_seconds": sum(meter.cpu) / len(meter.cpu), "samples_per_s": batch / step,
        "tokens_per_step": sum(meter.tokens) / len(meter.tokens) if meter.tokens else None,
        "decoder_batch_shape": list(meter.shape), "flops_per_step": flops, "peak_flops_per_s": peak,
        "flops_utilisation": flops / step / peak if flops else None,
        "flops_utilisation_of_measured_matmul": flops / step / peak_rate if flops else None,
    })
    if result["tokens_per_step"]:
        result["tokens_per_s"] = result["tokens_per_step"] / step

    decoder = getattr(task, "decoder", None)
    if decoder is not None and type(task).predict_step is not L.LightningModule.predict_step:
        if args.max_new_tokens and hasattr(decoder, "max_new_tokens"):
            decoder.max_new_tokens = args.max_new_tokens
        result["generation_max_new_tokens"] = getattr(decoder, "max_new_tokens", getattr(decoder, "max_length", None))
        sync(device)
        start = time.perf_counter()
        rows = [row for batch_rows in trainer.predict(task, datamodule=datamodule) for row in batch_rows]
        sync(device)
        seconds = time.perf_counter() - start
        generated = sum(len(decoder.tokenizer.encode(row["generated"])) + 1 for row in rows)
        result["generation"] = {"samples": len(rows), "seconds": seconds, "samples_per_s": len(rows) / seconds,
                                "generated_tokens": generated, "tokens_per_s": generated / seconds}

    lora = getattr(decoder, "lora", None)
    if lora is not None and getattr(decoder, "llm", None) is not None:
        config = decoder.llm.config.to_dict()
        others = {k: v for k, v in result["parameters"].items() if k != "llm"}
        batch_size, seq = meter.shape
        estimate = lora_memory_estimate(
            config, lora.r, lora.target_modules, batch_size, seq, checkpointing=decoder.gradient_checkpointing,
            other_frozen_bytes=sum(v["frozen_bytes"] for v in others.values()),
            other_trainable=sum(v["trainable"] for v in others.values()))
        result["memory_estimate"] = estimate
        result["measured_over_estimate"] = result["peak_memory"] / estimate["total"]
    return result


# --- the driver -------------------------------------------------------------------------------------
def prepare(args) -> dict[str, str]:
    """The data and each recipe's offline copy (stand-ins written here, outside the measured processes)."""
    from xrg.data.synthetic import ensure_benchmark
    from xrg.standins import offline_recipe

    work = Path(args.work)
    largest = args.batch_size or max(_batch(r) for r in args.recipes)
    train = largest * (args.warmup + args.steps + 1)
    data = ensure_benchmark(work / "data", num_studies=math.ceil(train / 0.8) + 4, seed=0, views=2, image_size=512)
    offline = {}
    for recipe in args.recipes:
        name = _name(recipe)
        print(f"stand-ins for {name} ...", flush=True)
        offline[name] = str(offline_recipe(recipe, work / "standins", size="paper", depth=args.depth, data=data,
                                           name=name.replace("/", "_")).path)
    return offline


def _batch(recipe: Path) -> int:
    import yaml

    return int(yaml.safe_load(recipe.read_text())["data"]["init_args"].get("batch_size", 16))


def _name(recipe: Path) -> str:
    return str(Path(recipe).resolve().relative_to(REPO / "recipes"))


def memory_table(args) -> dict:
    """The estimate at full depth for each LoRA-trained 7B stage, its other blocks counted from a build
    with every encoder at full depth (the LLM built at depth 1: its full size is computed)."""
    import yaml

    from xrg.standins import PAPER_HF, offline_recipe

    rows = {}
    for recipe in args.recipes:
        decoder = yaml.safe_load(recipe.read_text())["model"]["init_args"].get("decoder", {}).get("init_args", {})
        if not decoder.get("lora"):
            continue
        offline = offline_recipe(recipe, Path(args.work) / "standins", size="paper", depth=None, llm_depth=1,
                                 name=f"full_{_name(recipe).replace('/', '_')}")
        counts = json.loads(subprocess.run([sys.executable, __file__, "--count", str(offline.path)], check=True,
                                           capture_output=True, text=True).stdout.strip().splitlines()[-1])
        others = {k: v for k, v in counts.items() if k != "llm"}
        llm = PAPER_HF[decoder["model"]]
        lora = decoder["lora"]
        table = {}
        for batch in (1, 4, 8, 16):
            for seq in (256, 512, 1024):
                estimate = lora_memory_estimate(
                    llm, lora["r"], lora["target_modules"], batch, seq, checkpointing=decoder.get("gradient_checkpointing", False),
                    other_frozen_bytes=sum(v["frozen_bytes"] for v in others.values()),
                    other_trainable=sum(v["trainable"] for v in others.values()))
                table[f"{batch}x{seq}"] = estimate
        rows[_name(recipe)] = {"llm": decoder["model"], "other_blocks": others, "estimate": table,
                               "recipe_batch": _batch(recipe), "recipe_max_length": decoder.get("max_length")}
    return rows


def count_blocks(recipe_path: str) -> dict:
    import xrg
    from xrg.lightning_cli import XrgCLI

    cli = XrgCLI(model_class=xrg.tasks.XrgTask, datamodule_class=xrg.data.ReportDataModule, subclass_mode_model=True,
                 subclass_mode_data=True, args=["--config", recipe_path, "--trainer.accelerator=cpu", "--trainer.logger=false"], run=False,
                 auto_configure_optimizers=False, save_config_kwargs={"overwrite": True})
    return block_bytes(cli.model)


def gb(value) -> str:
    return "-" if value is None else f"{value / 1e9:.2f}"


def print_tables(results: dict, table: dict | None) -> None:
    """Markdown, as benchmarks/README.md and docs/performance.md quote it."""
    print("\n| recipe | batch | step s (CPU s) | samples/s | tokens/s | peak GB | TFLOP/step | util % "
          "| generation samples/s | generated tokens/s |\n|" + " --- |" * 10)
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | failed: {r['error'][:100]} |")
            continue
        g = r.get("generation") or {}
        tokens = f"{r['tokens_per_s']:.1f}" if r.get("tokens_per_s") else "-"
        util = f"{r['flops_utilisation'] * 100:.1f}" if r.get("flops_utilisation") else "-"
        generation = (f"{g['samples_per_s']:.3f} | {g['tokens_per_s']:.1f}" if g else "- | -")
        print(f"| {name} | {r['batch_size']} | {r['step_seconds']:.1f} ({r['step_cpu_seconds']:.1f}) | "
              f"{r['samples_per_s']:.3f} | {tokens} | {gb(r['peak_memory'])} | {r['flops_per_step'] / 1e12:.3f} | {util} "
              f"| {generation} |")
    checks = {n: r for n, r in results.items() if "memory_estimate" in r}
    if checks:
        print("\n| LoRA stage | batch x length | measured GB | estimate GB | weights | trainable + Adam | activations "
              "| logits | measured / estimate |\n|" + " --- |" * 9)
        for name, r in checks.items():
            e = r["memory_estimate"]
            shape = " x ".join(map(str, r["decoder_batch_shape"]))
            print(f"| {name} | {shape} | {gb(r['peak_memory'])} | {gb(e['total'])} | {gb(e['base_weights'] + e['other_frozen'])} "
                  f"| {gb(e['trainable_with_adam'])} | {gb(e['activations'])} | {gb(e['logits'])} | {r['measured_over_estimate']:.2f} |")
    for name, row in (table or {}).items():
        print(f"\n{name} ({row['llm']}, full depth): estimated GB by batch x sequence length")
        print("| batch | " + " | ".join(f"T = {t}" for t in (256, 512, 1024)) + " |\n| --- | --- | --- | --- |")
        for batch in (1, 4, 8, 16):
            print(f"| {batch} | " + " | ".join(gb(row["estimate"][f"{batch}x{t}"]["total"]) for t in (256, 512, 1024)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--depth", default="2", help="blocks per stack (an integer, or 'full')")
    parser.add_argument("--recipes", nargs="*", help="paths under recipes/ (default: every paper-size recipe)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (the first one's FLOPs are counted)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="instead of the recipe's (default: the recipe's; 2 on a CPU)")
    parser.add_argument("--max-new-tokens", type=int, help="cap an LLM's generation (default: the recipe's; 16 on a CPU, "
                        "whose memory bandwidth makes each token of a 7B-wide model take ~0.5 s here)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="CPU threads of torch")
    parser.add_argument("--work", default=str(REPO / "data_cache" / "throughput"))
    parser.add_argument("--memory-table", action="store_true", help="only the full-depth estimate of the 7B LoRA stages")
    parser.add_argument("--no-table", dest="table", action="store_false", help="measure only, no full-depth estimate")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this offline recipe, print JSON
    parser.add_argument("--count", help=argparse.SUPPRESS)  # internal: count this offline recipe's parameters
    args = parser.parse_args()
    args.depth = None if args.depth == "full" else int(args.depth)
    if args.device == "cpu":  # a 2-core share of a loaded machine: ~12 GFLOP per CPU second
        args.max_new_tokens = args.max_new_tokens or 16
        args.batch_size = args.batch_size or 2
    if args.one or args.count:
        print(json.dumps(measure(args.one, args) if args.one else count_blocks(args.count)))
        return
    args.recipes = [REPO / "recipes" / r for r in args.recipes] if args.recipes else paper_size_recipes()
    out = REPO / "benchmarks" / "results" / f"throughput_{args.device}_depth{args.depth or 'full'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = memory_table(args) if args.table or args.memory_table else {}
    if table:
        write_atomic(out.parent / "lora_memory_table.json", json.dumps(table, indent=1))
    results: dict = {}
    if out.exists() and json.loads(out.read_text()).get("settings") == _settings(args):
        results = json.loads(out.read_text())["recipes"]  # a rerun of some recipes keeps the others' figures
    if not args.memory_table:
        offline = prepare(args)
        for name, path in offline.items():
            print(f"measuring {name} ...", flush=True)
            before = _children_cpu()
            command = [sys.executable, __file__, "--one", path, "--device", args.device, "--warmup", str(args.warmup),
                       "--steps", str(args.steps), "--threads", str(args.threads), "--work", args.work,
                       *(["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []),
                       *(["--batch-size", str(args.batch_size)] if args.batch_size else [])]
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode:
                results[name] = {"error": (run.stderr.strip().splitlines() or ["?"])[-1]}
            else:
                results[name] = json.loads(run.stdout.strip().splitlines()[-1])
            results[name]["process_cpu_seconds"] = _children_cpu() - before
            write_atomic(out, json.dumps({"settings": _settings(args), "recipes": results}, indent=1))
    print_tables(results, table)
    print(f"\nwrote {out}")


def _children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


def _settings(args) -> dict:
    import platform

    import torch

    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    return {"device": args.device, "device_name": device, "depth": args.depth, "warmup": args.warmup, "steps": args.steps,
            "threads": args.threads, "batch_size": args.batch_size or "recipe's", "max_new_tokens": args.max_new_tokens,
            "torch": torch.__version__}


if __name__ == "__main__":
    main()
