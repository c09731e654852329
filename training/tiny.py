"""Tiny base models built locally in seconds: a byte-level BPE tokenizer trained with ``tokenizers``
plus a randomly initialised 2-layer Llama or Qwen2. They stand in for the paper's 7-9B models on a
CPU, in the demo grid and in tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from common.io import write_text
from common.template import render_sample
from training.demo_data import DEMO_DATASETS, demo_examples

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


def _tokenizer_corpus(extra_texts: Iterable[str]) -> list[str]:

    texts = list(extra_texts)
    for name in DEMO_DATASETS:
        for example in demo_examples(name, "train", 400) + demo_examples(name, "test", 100):
            texts.append(render_sample(example["instruction"], example["response"]))
    texts.append("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()[]{}#-+*/=_\n")
    return texts


def build_tokenizer(vocab_size: int = 512, extra_texts: Iterable[str] = ()):
    """A fast tokenizer with pad/bos/eos/unk, trained on the demo data and ``extra_texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(extra_texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def build_tiny_model(
    output_dir: str | os.PathLike[str],
    architecture: str = "llama",
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Write a loadable ``from_pretrained`` folder (config, safetensors weights, tokenizer) and return it.

    Idempotent: an existing complete folder is left as it is, so runs that share it stay comparable."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    output_dir = Path(output_dir)
    if (output_dir / "config.json").exists() and (output_dir / "model.safetensors").exists():
        return output_dir
    configs = {"llama": LlamaConfig, "qwen2": Qwen2Config}
    if architecture not in configs:
        raise ValueError(f"unknown tiny architecture {architecture!r}; choose one of {sorted(configs)}")
    tokenizer = build_tokenizer(vocab_size)
    config = configs[architecture](
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    write_text(staging / "README.md", f"Tiny randomly initialised {architecture} for demos and tests.\n")
    shutil.rmtree(output_dir, ignore_errors=True)  # an incomplete folder from a crashed build
    staging.replace(output_dir)
    return output_dir
