"""benchmarks/throughput.py's memory estimate counts the parameters a LoRA-trained Llama really has."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def load_script():
    spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_estimate_counts_the_base_and_lora_parameters_of_a_real_model():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    throughput = load_script()
    # grouped-query attention (k/v narrower than q) and an MLP target, so every shape rule is exercised
    config = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 8,
              "num_key_value_heads": 2, "vocab_size": 300, "tie_word_embeddings": False}
    targets = ["q_proj", "v_proj", "down_proj"]
    model = LlamaForCausalLM(LlamaConfig(**config))
    base = sum(p.numel() for p in model.parameters())
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    trained = sum(p.numel() for p in lora.parameters() if p.requires_grad)

    estimate = throughput.lora_memory_estimate(config, 4, targets, batch=2, seq=10)
    assert estimate["base_parameters"] == base and estimate["lora_parameters"] == trained
    assert estimate["base_weights"] == 2 * base and estimate["trainable_with_adam"] == 16 * trained
    assert estimate["logits"] == 14 * 2 * 10 * 300


def test_the_7b_stages_have_llama_7b_sizes():
    throughput = load_script()
    from xrg.standins import PAPER_HF

    estimate = throughput.lora_memory_estimate(PAPER_HF["meta-llama/Llama-2-7b-chat-hf"], 8, ["q_proj", "v_proj"], 1, 1)
    assert estimate["base_parameters"] == 6_738_415_616  # Llama-2-7B's published count
    assert estimate["lora_parameters"] == 4_194_304  # peft's count for r 8 on q and v
    # checkpointing keeps one layer's working set instead of 32
    plain = throughput.lora_memory_estimate(PAPER_HF["meta-llama/Llama-2-7b-chat-hf"], 8, ["q_proj", "v_proj"], 1, 1,
                                            checkpointing=False)
    assert plain["activations"] > 10 * estimate["activations"]
