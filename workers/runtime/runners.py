"""What a worker does with a resident base and an active adapter: the dynamic
compatibility check and evaluations (causal-LM loss, classification, exact match)."""

import json
import math
import time

from workers.runtime.resident import ResidentBase

PROBE_TEXT = "The registry checks that every adapter fits its base and changes what it computes."


def _inputs(resident: ResidentBase, text: str):
    import torch

    ids = resident.tokenizer.encode(text)
    device = next(resident.model.parameters()).device
    return {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
    }


def _output_tensor(output):
    return output.logits if hasattr(output, "logits") else output.last_hidden_state


def _nonfinite_adapter_weights(resident: ResidentBase) -> list[str]:
    """The active adapter's non-finite weights, named as in its file: peft names the attached copy
    `...lora_A.<slot>.weight`, and the slot is the worker's own name for it, which means nothing to
    the pusher."""
    import torch

    slot = f".{resident.active}."
    bad = [n for n, p in resident.model.named_parameters() if slot in f".{n}." and not torch.isfinite(p).all()]
    return [f".{n}.".replace(slot, ".").strip(".") for n in bad[:5]]


def dynamic_check(resident: ResidentBase) -> tuple[str, list[str], dict]:
    """Forward a few tokens with and without the active adapter."""
    import torch

    reasons = []
    inputs = _inputs(resident, PROBE_TEXT)
    started = time.perf_counter()
    with torch.inference_mode():
        adapted = _output_tensor(resident.model(**inputs)).float()
        with resident.model.disable_adapter():
            bare = _output_tensor(resident.model(**inputs)).float()
    forward_ms = (time.perf_counter() - started) * 1000
    bad_weights = _nonfinite_adapter_weights(resident)
    if bad_weights:
        reasons.append(f"adapter weights contain NaN or Inf (e.g. {bad_weights[0]})")
    if not torch.isfinite(adapted).all():
        reasons.append("outputs with the adapter contain NaN or Inf")
    difference = float((adapted - bare).abs().max()) if torch.isfinite(adapted).all() else float("nan")
    if difference == 0.0:
        reasons.append("the adapter does not change the base's outputs (all-zero adapter?)")
    details = {
        "tokens": int(inputs["input_ids"].shape[1]),
        "max_abs_output_change": difference if math.isfinite(difference) else None,
        "forward_ms": round(forward_ms, 2),
    }
    return ("fail" if reasons else "pass"), reasons, details


# --- Evaluations ---------------------------------------------------------------------------


def _causal_lm(resident: ResidentBase, rows: list[dict]) -> dict:

    total_loss, total_tokens = 0.0, 0
    for row in rows:
        inputs = _inputs(resident, row["text"])
        if inputs["input_ids"].shape[1] < 2:
            continue
        output = resident.model(**inputs, labels=inputs["input_ids"])
        tokens = int(inputs["input_ids"].shape[1]) - 1
        total_loss += float(output.loss) * tokens
        total_tokens += tokens
    loss = total_loss / max(total_tokens, 1)
    return {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50)), 4), "tokens": total_tokens}


def _macro_f1(pairs: list[tuple[int, int]]) -> float:
    labels = {label for pair in pairs for label in pair}
    scores = []
    for label in labels:
        tp = sum(1 for p, t in pairs if p == label and t == label)
        fp = sum(1 for p, t in pairs if p == label and t != label)
        fn = sum(1 for p, t in pairs if p != label and t == label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def _classification(resident: ResidentBase, rows: list[dict]) -> dict:
    pairs = []
    for row in rows:
        logits = resident.model(**_inputs(resident, row["text"])).logits
        pairs.append((int(logits.argmax(-1)), int(row["label"])))
    accuracy = sum(p == t for p, t in pairs) / len(pairs)
    return {"accuracy": round(accuracy, 6), "f1_macro": round(_macro_f1(pairs), 6)}


def _exact_match(resident: ResidentBase, rows: list[dict]) -> dict:
    hits = 0
    for row in rows:
        inputs = _inputs(resident, row["prompt"])
        answer_tokens = len(resident.tokenizer.encode(row["answer"]))
        generated = resident.model.generate(**inputs, max_new_tokens=answer_tokens + 2, do_sample=False)
        text = resident.tokenizer.decode(generated[0, inputs["input_ids"].shape[1] :].tolist())
        hits += text.strip() == row["answer"].strip()
    return {"exact_match": round(hits / len(rows), 6)}


RUNNERS = {"causal_lm": _causal_lm, "classification": _classification, "exact_match": _exact_match}
# REQUIRED_HEAD: the registry refuses misfit suites up front with the same table; measure() is the
# last line of defence. (TextChoices keys compare and hash equal to their strings.)


def measure(resident: ResidentBase, task_type: str, rows: list[dict], *, bare: bool = False) -> dict:
    """Metrics of the active adapter (or of the bare base) on the rows, with the registry's fixed seed."""
    # Imported here so the runners themselves load without Django (benchmarks/gpu_runtime.py).
    from django.conf import settings

    from registry.services.suites import REQUIRED_HEAD

    needed = REQUIRED_HEAD[task_type]
    if resident.head != needed:
        raise ValueError(
            f"{task_type} suites need a {needed.replace('_', ' ')} model; this adapter runs its base as {resident.head}"
            + (
                " (exact_match and causal_lm need a causal language model)"
                if needed == "causal_lm"
                else " (train it with a classifier in modules_to_save)"
            )
        )
    return evaluate(resident, task_type, rows, seed=settings.EVALUATION_SEED, bare=bare)


def evaluate(resident: ResidentBase, task_type: str, rows: list[dict], *, seed: int, bare: bool = False) -> dict:
    """The task type's runner over the rows, seeded and timed; `measure` checks the head first."""
    import contextlib

    import torch

    torch.manual_seed(seed)
    started = time.perf_counter()
    context = resident.model.disable_adapter() if bare else contextlib.nullcontext()
    with torch.inference_mode(), context:
        metrics = RUNNERS[task_type](resident, rows)
    seconds = time.perf_counter() - started
    metrics["examples"] = len(rows)
    metrics["examples_per_second"] = round(len(rows) / seconds, 2) if seconds else None
    return metrics


def read_rows(handle) -> list[dict]:
    return [json.loads(line) for line in handle.read().decode().splitlines() if line.strip()]
