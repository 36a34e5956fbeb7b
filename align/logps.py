"""Per-sequence log-probabilities of answer tokens, from one concatenated forward."""
from __future__ import annotations

import torch


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-prob of the labelled tokens per row, and their count.

    Works in fp32 whatever the model dtype (bf16 log-softmax loses the small
    differences DPO feeds on) and gathers only the target tokens: logsumexp
    minus the target logit, never a full [B, T, V] log-softmax kept for backward.
    """
    logits = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    mask = targets != -100
    safe = targets.masked_fill(~mask, 0)
    picked = torch.gather(logits, 2, safe.unsqueeze(-1)).squeeze(-1)
    token_logps = (picked - torch.logsumexp(logits, dim=-1)) * mask
    return token_logps.sum(-1), mask.sum(-1)


def concatenated_forward(model, batch: dict[str, torch.Tensor]):
    """Run prompt+chosen and prompt+rejected rows in one forward.

    Rows are right-padded (``align.encoding.collate``), so under causal attention no
    real token ever sees a pad: the padding mask changes nothing for scored tokens
    and is left out, which lets SDPA take its faster plain-causal path (bit-identical
    log-probs, tested against TRL).

    Returns (chosen_logps, rejected_logps, chosen_tokens, rejected_tokens), each [B].
    """
    out = model(input_ids=batch["input_ids"], use_cache=False)
    logps, counts = sequence_logps(out.logits, batch["labels"])
    b = logps.shape[0] // 2
    return logps[:b], logps[b:], counts[:b], counts[b:]
