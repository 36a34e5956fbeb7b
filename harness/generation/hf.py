"""transformers backend: batched, left-padded ``generate`` over chat-templated prompts."""
from __future__ import annotations

import torch

from harness.generation import Generation, Message, SamplingSettings, apply_stop


class HFGenerator:
    name = "hf"

    def __init__(self, model: str, *, batch_size: int = 16, device: str | None = None, dtype: str | None = None,
                 progress: bool = True):
        from transformers import AutoTokenizer

        from align.modeling import load_for_inference, tokenizer_source

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "bfloat16" if self.device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(model))
        if not self.tokenizer.chat_template:
            raise ValueError(f"{model}: the tokenizer has no chat template; the hf backend needs one")
        self.tokenizer.padding_side = "left"  # generation continues from the right edge of every row
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # A LoRA adapter directory is loaded as its base with the adapter merged in memory.
        self.model = load_for_inference(model, getattr(torch, dtype), self.device)
        self.batch_size = batch_size
        self.progress = progress
        self.model_name = model

    def prompt(self, conversation: list[Message]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def generate(self, conversations: list[list[Message]], sampling: SamplingSettings) -> list[Generation]:
        from tqdm.auto import tqdm

        prompts = [self.prompt(c) for c in conversations]
        # Longest first so rows of similar length share a batch (less padding) and memory errors show early.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        bar = tqdm(total=len(prompts), desc="generate (hf)", disable=not self.progress)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, g in zip(idx, self._batch([prompts[i] for i in idx], sampling)):
                results[i] = g
            bar.update(len(idx))
        bar.close()
        return results  # type: ignore[return-value]

    def _batch(self, prompts: list[str], s: SamplingSettings) -> list[Generation]:
        tok = self.tokenizer
        # The chat template already renders BOS where the model wants it.
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs = dict(max_new_tokens=s.max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if s.temperature > 0:
            torch.manual_seed(s.seed)
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.stop:
            kwargs.update(stop_strings=list(s.stop), tokenizer=tok)
        out = self.model.generate(**enc, **kwargs)[:, enc["input_ids"].shape[1] :].tolist()
        gens = []
        for ids in out:
            ended = tok.eos_token_id in ids
            if ended:
                ids = ids[: ids.index(tok.eos_token_id)]
            ids = [t for t in ids if t != tok.pad_token_id]
            text, stopped = apply_stop(tok.decode(ids, skip_special_tokens=True), s.stop)
            finish = "stop" if ended or stopped or len(ids) < s.max_new_tokens else "length"
            gens.append(Generation(text=text, n_tokens=len(ids), finish_reason=finish))
        return gens
