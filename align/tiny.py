"""The embedded tiny base model: a small Llama with a locally trained BPE tokenizer.

It is the CPU default and the CI model. It is briefly pre-trained on text so that
it is not random: either text the caller gives, or the project's own generated
arithmetic dialogues (the same task family as the default preference data), so
DPO on it moves real probabilities.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import torch

# Role markers and end-of-turn; the chat template below renders with these.
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def arithmetic_problem(rng: random.Random) -> tuple[str, str, str, int]:
    """One problem: (source, question, worked answer, result)."""
    kind = rng.choice(["addition", "subtraction", "multiplication"])
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    if kind == "addition":
        op, result = "+", a + b
    elif kind == "subtraction":
        a, b = max(a, b), min(a, b)
        op, result = "-", a - b
    else:
        b = rng.randint(2, 12)
        op, result = "*", a * b
    question = f"What is {a} {op} {b}?"
    answer = f"{a} {op} {b} = {result}. The answer is {result}."
    return kind, question, answer, result


def render_dialogue(question: str, answer: str) -> str:
    return f"<s><|user|>\n{question}<|end|>\n<|assistant|>\n{answer}<|end|>\n"


def arithmetic_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [render_dialogue(*arithmetic_problem(rng)[1:3]) for _ in range(n)]


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def make_tiny_model(
    output: str | os.PathLike,
    texts: list[str] | None = None,
    *,
    vocab_size: int = 384,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    pretrain_steps: int = 300,
    seq_len: int = 128,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Build, pre-train and save the tiny model into ``output``; returns the path."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    texts = texts if texts is not None else arithmetic_corpus(6000, seed)
    tokenizer = train_tokenizer(texts, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)

    # Pack the corpus into one token stream and train on random windows of it.
    ids = []
    for t in texts:
        ids.extend(tokenizer(t, add_special_tokens=False)["input_ids"])
    stream = torch.tensor(ids, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, pretrain_steps), pct_start=0.1)
    model.train()
    from harness.console import terminal

    bar = tqdm(range(pretrain_steps), desc="pre-train tiny model", disable=not progress, file=terminal())
    for _ in bar:
        starts = torch.randint(0, len(stream) - seq_len - 1, (batch_size,), generator=gen)
        batch = torch.stack([stream[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}")

    out = Path(output)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}-{int(time.time())}")
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "tiny_model.json").write_text(
        json.dumps({"pretrain_steps": pretrain_steps, "final_loss": loss.item(), "seed": seed, "n_texts": len(texts)}, indent=2)
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a half-written model never sits at `output`
    return out


def default_tiny_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path to the embedded default, built once and cached."""
    from align.cache import cache_root

    path = Path(cache_dir) if cache_dir else cache_root() / "tiny-base"
    if not (path / "config.json").exists():
        make_tiny_model(path)
    return path
