"""Token ids for preference pairs, and the padded chosen+rejected batch.

Tokenisation: with a chat template, the prompt is the template rendered with
``add_generation_prompt=True`` and an answer is what the template adds after it
(so end-of-turn tokens are trained). Without a template: BOS + plain text, and the
answer is its plain tokens + EOS.

Truncation policy (as in eric-mitchell/direct-preference-optimization):
  1. if prompt + the longer answer exceeds ``max_length``, keep only the last
     ``max_prompt_length`` prompt tokens (the latest turns matter most);
  2. if still too long, cut both answers to ``max_length - len(prompt)``.
A prompt that alone is ``max_length`` tokens or more leaves no room for an answer
and is a data error.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from align.data import DataError, PreferencePair


@dataclass
class EncodedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    source: str
    index: int  # position in the dataset; keys the reference log-prob cache
    prompt_cut: int = 0  # prompt tokens dropped by truncation
    answer_cut: int = 0  # chosen + rejected tokens dropped by truncation


def _answer_ids(tokenizer, prompt_msgs, prompt_ids, answer: str) -> list[int]:
    if tokenizer.chat_template:
        full = tokenizer.apply_chat_template(prompt_msgs + [{"role": "assistant", "content": answer}], tokenize=True)
        full = full["input_ids"] if isinstance(full, dict) or hasattr(full, "keys") else full
        if full[: len(prompt_ids)] == prompt_ids:
            return full[len(prompt_ids) :]
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def _prompt_ids(tokenizer, prompt_msgs) -> list[int]:
    if tokenizer.chat_template:
        ids = tokenizer.apply_chat_template(prompt_msgs, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt_msgs) + "\n\nAssistant: "
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + ids


def encode_pair(tokenizer, pair: PreferencePair, index: int, max_length: int, max_prompt_length: int) -> EncodedPair:
    prompt = _prompt_ids(tokenizer, pair.prompt)
    if len(prompt) >= max_length:
        raise DataError(f"{pair.origin}: field 'prompt': {len(prompt)} tokens, longer than max_length={max_length}")
    chosen = _answer_ids(tokenizer, pair.prompt, prompt, pair.chosen)
    rejected = _answer_ids(tokenizer, pair.prompt, prompt, pair.rejected)
    n_prompt = len(prompt)
    if len(prompt) + max(len(chosen), len(rejected)) > max_length:
        prompt = prompt[-max_prompt_length:]
    room = max_length - len(prompt)
    answer_cut = max(0, len(chosen) - room) + max(0, len(rejected) - room)
    return EncodedPair(prompt, chosen[:room], rejected[:room], pair.source, index, n_prompt - len(prompt), answer_cut)


def encode_pairs(tokenizer, pairs, max_length: int, max_prompt_length: int, skip_invalid: bool = False):
    out, skipped = [], []
    for i, p in enumerate(pairs):
        try:
            out.append(encode_pair(tokenizer, p, i, max_length, max_prompt_length))
        except DataError as e:
            if not skip_invalid:
                raise
            skipped.append(str(e))
    for j, e in enumerate(out):
        e.index = j
    return out, skipped


def truncation_summary(encoded: list[EncodedPair]) -> dict:
    """How many pairs truncation shortened, and by how many tokens (for the log and run.json)."""
    cut = [e for e in encoded if e.prompt_cut or e.answer_cut]
    return {"pairs": len(cut), "prompt_tokens_dropped": sum(e.prompt_cut for e in cut),
            "answer_tokens_dropped": sum(e.answer_cut for e in cut),
            "max_tokens_dropped_in_one_pair": max((e.prompt_cut + e.answer_cut for e in cut), default=0)}


def fingerprint_encoded(encoded: list[EncodedPair]) -> str:
    """Hash of the exact token ids: covers data, tokenizer and truncation settings."""
    h = hashlib.sha256()
    for e in encoded:
        for ids in (e.prompt_ids, e.chosen_ids, e.rejected_ids):
            h.update(len(ids).to_bytes(4, "little"))
            h.update(torch.tensor(ids, dtype=torch.int64).numpy().tobytes())
    return h.hexdigest()[:16]


def collate(encoded: list[EncodedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Concatenated batch: rows [0, B) are prompt+chosen, rows [B, 2B) prompt+rejected.

    ``labels`` hold -100 on prompt and padding, so only answer tokens are scored.
    Right padding; ``index`` maps rows back to dataset positions.
    """
    seqs, labels = [], []
    for key in ("chosen_ids", "rejected_ids"):
        for e in encoded:
            ans = getattr(e, key)
            seqs.append(e.prompt_ids + ans)
            labels.append([-100] * len(e.prompt_ids) + ans)
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    label_t = torch.full((len(seqs), width), -100, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, (s, l) in enumerate(zip(seqs, labels)):
        input_ids[r, : len(s)] = torch.tensor(s)
        label_t[r, : len(l)] = torch.tensor(l)
        attn[r, : len(s)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attn,
        "labels": label_t,
        "index": torch.tensor([e.index for e in encoded], dtype=torch.long),
    }


def mismatched_pairs(encoded: list[EncodedPair], max_length: int) -> list[EncodedPair]:
    """Each pair's prompt with the answers of the pair before it (the last pair's for the first): the
    mismatched prompt/answer pairs a KL estimate needs (KTO's reference point). Answers are cut to fit."""
    out = []
    for i, e in enumerate(encoded):
        other = encoded[i - 1]
        room = max_length - len(e.prompt_ids)
        out.append(EncodedPair(e.prompt_ids, other.chosen_ids[:room], other.rejected_ids[:room], e.source, e.index))
    return out
