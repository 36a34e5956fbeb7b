"""Per-sequence log-probabilities of answer tokens, from one concatenated forward.

Two paths give the same numbers:

* chunked (default): the model runs with its output projection swapped for a
  catch of its input, so the forward yields hidden states; only answer positions
  are kept, and projection, log-sum-exp and target gather run a few hundred tokens
  at a time in ``ChunkedTokenLogps``, whose backward recomputes each chunk. No
  ``[B, T, V]`` (or even ``[answer tokens, V]``) logits tensor ever exists.
  The call still goes through the (possibly DDP-wrapped) model's own forward, so
  DDP's gradient hooks and peft adapters work unchanged.
* full (``full_logits=True``, or a fallback with a logged reason): the model's
  logits, then ``sequence_logps``.
"""
from __future__ import annotations

import contextlib
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Rows of fp32 logits per chunk: ~2**25 floats (128 MiB), but at least 64 tokens so the matmuls stay efficient.
CHUNK_ELEMENTS = 2**25
_warned: set[str] = set()


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


# ------------------------------------------------------------------ chunked
def _project(h, weight, bias, scale, softcap):
    """fp32 logits of one chunk (matmul in the inputs' dtype, as autocast would), and tanh for softcap's backward."""
    z = F.linear(h, weight, bias).float()
    if scale != 1.0:
        z = z * scale
    t = None
    if softcap:
        t = torch.tanh(z / softcap)
        z = softcap * t
    return z, t


class ChunkedTokenLogps(torch.autograd.Function):
    """log softmax(softcap(scale · (h Wᵀ + b)))[target] per row of ``h``, chunk by chunk.

    ``compute_dtype`` is the matmul dtype (autocast's, else the weight's); the softmax is fp32.
    Backward recomputes each chunk's logits: d logit = g · (onehot − softmax), through softcap
    and scale, then into the hidden states and (when trained) the weight and bias.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk, scale, softcap, compute_dtype):
        w = weight.to(compute_dtype)
        b = None if bias is None else bias.to(compute_dtype)
        out = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
        lse = torch.empty_like(out)
        for s in range(0, h.shape[0], chunk):
            z, _ = _project(h[s : s + chunk].to(compute_dtype), w, b, scale, softcap)
            lse[s : s + chunk] = torch.logsumexp(z, dim=-1)
            out[s : s + chunk] = z.gather(1, targets[s : s + chunk, None]).squeeze(1) - lse[s : s + chunk]
        ctx.save_for_backward(h, weight, bias, targets, lse)
        ctx.cfg = (chunk, scale, softcap, compute_dtype)
        return out

    @staticmethod
    def backward(ctx, g):
        h, weight, bias, targets, lse = ctx.saved_tensors
        chunk, scale, softcap, cd = ctx.cfg
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        w = weight.to(cd)
        b = None if bias is None else bias.to(cd)
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        g = g.float()
        for s in range(0, h.shape[0], chunk):
            hc = h[s : s + chunk].to(cd)
            gc, tc = g[s : s + chunk], targets[s : s + chunk]
            z, t = _project(hc, w, b, scale, softcap)
            dz = torch.exp_(z.sub_(lse[s : s + chunk, None])).mul_(-gc[:, None])  # -g · softmax, in place
            dz.scatter_add_(1, tc[:, None], gc[:, None])
            if softcap:
                dz.mul_(1 - t * t)
            if scale != 1.0:
                dz.mul_(scale)
            dzc = dz.to(cd)
            if need_h:
                grad_h[s : s + chunk] = dzc @ w
            if need_w:
                grad_w += (dzc.t() @ hc).float()
            if need_b:
                grad_b += dz.sum(0)
        return (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                None if grad_b is None else grad_b.to(bias.dtype), None, None, None, None, None)


def chunked_sequence_logps(hidden, labels, weight, bias=None, scale: float = 1.0, softcap: float | None = None,
                           chunk: int | None = None):
    """``sequence_logps`` from the last hidden states [B, T, H] and the output projection, never building the logits."""
    targets = labels[:, 1:]
    mask = targets != -100
    h = hidden[:, :-1][mask]  # answer positions only: prompt and padding are never projected
    device_type = h.device.type
    if torch.is_autocast_enabled(device_type):
        cd = torch.get_autocast_dtype(device_type)
    else:
        cd = torch.promote_types(h.dtype, weight.dtype)
    chunk = chunk or max(64, CHUNK_ELEMENTS // weight.shape[0])
    per_token = ChunkedTokenLogps.apply(h, weight, bias, targets[mask], chunk, float(scale), softcap, cd)
    # Back into [B, T-1] with zeros elsewhere, then the same row sums as the full path.
    token_logps = torch.zeros(mask.shape, dtype=torch.float32, device=h.device).masked_scatter(mask, per_token)
    return token_logps.sum(-1), mask.sum(-1)


# ----------------------------------------------------------- model plumbing
def _unwrap(model):
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model)


def output_transform(config) -> tuple[float, float | None]:
    """(scale, softcap) applied after the output projection, from the model config.

    Gemma 2/3 softcap the logits; Cohere and Falcon-H1 multiply them; Granite divides them
    (``logits_scaling``). Models that transform hidden states before the head need nothing here.
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    scale = 1.0
    for name in ("logit_scale", "output_multiplier", "lm_head_multiplier"):
        if getattr(text, name, None) is not None:
            scale = float(getattr(text, name))
            break
    else:
        if getattr(text, "logits_scaling", None) is not None:
            scale = 1.0 / float(text.logits_scaling)
    return scale, getattr(text, "final_logit_softcapping", None) or None


def chunked_unsupported(model) -> str | None:
    """Why the chunked path cannot serve this model (None when it can)."""
    inner = _unwrap(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if head is None:
        return "the model exposes no output embeddings"
    if type(head) is not torch.nn.Linear:
        # e.g. peft adapters on lm_head, or a quantised head: their projection is not weight @ h
        return f"its output projection is a {type(head).__name__}, not a plain Linear"
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    except ImportError:  # pragma: no cover
        FSDP = ()
    if FSDP and (isinstance(model, FSDP) or any(isinstance(m, FSDP) for m in inner.modules())):
        return "under FSDP the output projection is sharded"
    if type(head.weight).__name__ == "DTensor":
        return "the output projection is a sharded DTensor (FSDP2 / tensor parallel)"
    if hasattr(head.weight, "ds_id"):
        return "under DeepSpeed ZeRO-3 the output projection is partitioned"
    return None


def logps_mode(model, full_logits: bool) -> str:
    """What ``concatenated_forward`` will do for this model: 'chunked', 'full', or 'full (reason)'."""
    if full_logits:
        return "full"
    reason = chunked_unsupported(model)
    return "chunked" if reason is None else f"full ({reason})"


@contextlib.contextmanager
def _catch_head_input(head):
    """Swap the head's forward for one that keeps its input and returns an empty [..., 0] 'logits' tensor."""
    store: dict[str, torch.Tensor] = {}
    own = head.__dict__.get("forward")  # an instance-level forward (hooks) to restore afterwards

    def catch(x, *args, **kwargs):
        store["hidden"] = x
        return x[..., :0]

    head.forward = catch
    try:
        yield store
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


def concatenated_forward(model, batch: dict[str, torch.Tensor], full_logits: bool = False):
    """Run prompt+chosen and prompt+rejected rows in one forward.

    Rows are right-padded (``align.encoding.collate``), so under causal attention no
    real token ever sees a pad: the padding mask changes nothing for scored tokens
    and is left out, which lets SDPA take its faster plain-causal path (bit-identical
    log-probs, tested against TRL).

    Returns (chosen_logps, rejected_logps, chosen_tokens, rejected_tokens), each [B].
    """
    reason = None if full_logits else chunked_unsupported(model)
    if full_logits or reason is not None:
        if reason is not None and reason not in _warned:
            _warned.add(reason)
            log.warning("log-probs from full logits: %s", reason)
        out = model(input_ids=batch["input_ids"], use_cache=False)
        logps, counts = sequence_logps(out.logits, batch["labels"])
    else:
        inner = _unwrap(model)
        head = inner.get_output_embeddings()
        scale, softcap = output_transform(inner.config)
        with _catch_head_input(head) as caught:
            model(input_ids=batch["input_ids"], use_cache=False)  # through the wrapper: DDP hooks, adapters
        hidden = caught["hidden"].to(head.weight.device)
        logps, counts = chunked_sequence_logps(hidden, batch["labels"].to(hidden.device), head.weight, head.bias,
                                               scale, softcap)
    b = logps.shape[0] // 2
    return logps[:b], logps[b:], counts[:b], counts[b:]
