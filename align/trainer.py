"""The training loop, shared by every method. It knows losses only by registry name.

Flow: load data -> tokenise -> reference log-probs (one pass, cached on disk, no
reference model kept in memory) -> AdamW steps with accumulation and clipping ->
checkpoints (model, optimiser, scheduler, RNG, data position) -> final
``save_pretrained`` model in ``output`` with ``run.json`` and ``metrics.jsonl``.
Runs unchanged under ``accelerate launch`` (DDP, FSDP, DeepSpeed).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import time
from collections import Counter
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed

from align.atomic import write_atomic, write_json_atomic
from align.cache import cache_root
from align.config import TrainConfig
from align.data import LoadReport, default_preference_data, load_preference_data
from align.encoding import collate, encode_pairs, fingerprint_encoded, mismatched_pairs, truncation_summary
from align.fingerprint import model_fingerprint
from align.logps import concatenated_forward, logps_mode
from align.losses import PairLogps
from align.methods import loss_kwargs
from align.modeling import load_model  # noqa: F401  (align.sdpo and callers import it from here)

METRIC_KEYS = ("loss", "logps/chosen", "logps/rejected", "logps/chosen_mean", "logps/rejected_mean",
               "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def resolve_model(name: str, what: str = "--model") -> str:
    """'tiny' -> the embedded model (built once); else the name, checked to be a local dir or usable hub id."""
    if name == "tiny":
        from align.tiny import default_tiny_model

        return str(default_tiny_model())
    from align.hub import check_model_spec

    check_model_spec(name, what)
    return name


def effective_lengths(cfg: TrainConfig, model_name: str, say=print) -> dict:
    """max_length clamped to the model's positions (longer sequences would index past them), with a message."""
    from transformers import AutoConfig

    positions = getattr(AutoConfig.from_pretrained(model_name), "max_position_embeddings", None)
    max_length, max_prompt = cfg.max_length, cfg.max_prompt_length
    if positions and max_length > positions:
        max_length = positions
        max_prompt = min(max_prompt, max_length // 2)
        say(f"note: max_length {cfg.max_length} exceeds the {positions} positions of {model_name}: using max_length "
            f"{max_length}, max_prompt_length {max_prompt}")
    return {"max_length": max_length, "max_prompt_length": max_prompt, "model_max_positions": positions,
            "requested_max_length": cfg.max_length, "requested_max_prompt_length": cfg.max_prompt_length}


def report_data(say, report: LoadReport, truncation: dict | None, n_too_long: int, lengths: dict) -> None:
    """Say what happened to the data: skipped, duplicated, truncated pairs (also recorded in run.json)."""
    if report.n_skipped or n_too_long:
        say(f"skipped {report.n_skipped + n_too_long} invalid pairs (--skip-invalid)")
    if report.n_duplicates:
        what = "dropped (--dedupe)" if report.n_deduped else "kept; --dedupe drops them"
        say(f"warning: {report.n_duplicates} duplicate pairs ({report.duplicate_example}...): {what}")
    if truncation and truncation["pairs"]:
        say(f"note: {truncation['pairs']} pair(s) truncated to max_length {lengths['max_length']}: "
            f"{truncation['prompt_tokens_dropped']} prompt and {truncation['answer_tokens_dropped']} answer tokens "
            f"dropped (at most {truncation['max_tokens_dropped_in_one_pair']} in one pair)")


# ------------------------------------------------------- resuming
# Fields that change how a run is carried out, not what it computes: never a reason to refuse a resume.
RESUME_RUNTIME_FIELDS = ("output", "resume", "resume_ignore_config", "progress", "stop_after_steps",
                         "logging_steps", "save_steps", "save_total_limit")


class ResumeMismatch(ValueError):
    """The checkpoint was trained with another configuration or data than this run."""


def run_identity(cfg: TrainConfig, data_fingerprint: str, model_fingerprint_: str) -> dict:
    """What a checkpoint must share with the run that resumes it."""
    config = {k: v for k, v in cfg.to_dict().items() if k not in RESUME_RUNTIME_FIELDS}
    return {"config": config, "data_fingerprint": data_fingerprint, "base_model_fingerprint": model_fingerprint_}


def _flat(identity: dict) -> dict:
    out = {}
    for k, v in identity.items():
        if isinstance(v, dict):
            out.update({(f"{k2}" if k == "config" else f"{k}.{k2}"): v2 for k2, v2 in _flat(v).items()})
        else:
            out[k] = v
    return out


def check_resume(ckpt: Path, identity: dict, ignore: bool) -> dict:
    """Fields in which ``ckpt`` differs from this run: {field: [checkpoint's, this run's]}.
    Raises ResumeMismatch on any difference unless ``ignore``."""
    saved = json.loads((ckpt / "trainer_state.json").read_text()).get("identity")
    if saved is None:
        diffs = {"identity": ["not recorded (an older checkpoint)", "this run"]}
    else:
        old, new = _flat(saved), _flat(json.loads(json.dumps(identity, default=str)))
        diffs = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
    if diffs and not ignore:
        listed = "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in diffs.items())
        raise ResumeMismatch(f"{ckpt}: cannot resume, the checkpoint was trained differently: {listed}. "
                             "Use the checkpoint's settings, a new --output, or --resume-ignore-config to continue anyway")
    return diffs


def make_accelerator(cfg: TrainConfig, log_with: list[str] | None = None) -> Accelerator:
    """The run's accelerator; ``log_with`` names the experiment trackers (align.tracking), only for train()."""
    from accelerate.utils import ProjectConfiguration

    from align.tracking import tracking_dir

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    # accelerate only forms a CPU process group (gloo) when told it runs on CPU;
    # otherwise `accelerate launch` on a CPU machine starts N independent runs.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not log_with:
        return Accelerator(mixed_precision=mp, cpu=multi_cpu)
    project = ProjectConfiguration(project_dir=cfg.output, logging_dir=str(tracking_dir(cfg.output)))
    return Accelerator(mixed_precision=mp, cpu=multi_cpu, log_with=log_with, project_config=project)


# ------------------------------------------------------- reference log-probs
@torch.no_grad()
def compute_logps(model, encoded, acc: Accelerator, pad_id: int, batch_size: int, desc: str = "reference log-probs",
                  full_logits: bool = False):
    """Summed log-probs of every chosen and rejected answer, in dataset order."""
    from tqdm.auto import tqdm

    from harness.console import terminal

    was_training = model.training
    model.eval()
    rows = []
    # Length-sorted batches (less padding; results go back by index), dealt round-robin so each process's
    # contiguous share is as long as the others'. Even split (padding repeats): FSDP needs equal forwards.
    by_len = sorted(range(len(encoded)), key=lambda i: len(encoded[i].prompt_ids) + max(
        len(encoded[i].chosen_ids), len(encoded[i].rejected_ids)))
    world = acc.num_processes
    dealt = [i for p in range(world) for i in by_len[p::world]]
    with acc.split_between_processes(dealt, apply_padding=True) as mine:
        for start in tqdm(range(0, len(mine), batch_size), desc=desc, disable=not acc.is_local_main_process,
                          file=terminal()):
            idx = mine[start : start + batch_size]
            batch = {k: v.to(acc.device) for k, v in collate([encoded[i] for i in idx], pad_id).items()}
            with acc.autocast():
                c, r, _, _ = concatenated_forward(model, batch, full_logits)
            rows.extend(zip(idx, c.float().cpu().tolist(), r.float().cpu().tolist()))
    rows = gather_object(rows) if acc.num_processes > 1 else rows
    chosen = torch.zeros(len(encoded), dtype=torch.float32)
    rejected = torch.zeros(len(encoded), dtype=torch.float32)
    for i, c, r in rows:
        chosen[i], rejected[i] = c, r
    model.train(was_training)
    return chosen, rejected


def reference_logps(cfg, model, ref_name: str, encoded, acc, pad_id, mixed_precision: str):
    """Reference log-probs from the cache, else one pass with the reference model (for LoRA: the
    policy with its adapters disabled, i.e. the base)."""
    from align.modeling import reference_mode, reference_tag

    # The log-prob path is part of the key: chunked and full logits agree to ~1e-6, not bit for bit, and a
    # reference cached by the other path would make a run irreproducible from a fresh cache.
    mode = logps_mode(model, cfg.full_logits).split(" ")[0]
    key = f"{model_fingerprint(ref_name)}-{fingerprint_encoded(encoded)}-{mixed_precision}-{mode}"
    if not (cfg.reference_model and cfg.reference_model != cfg.model) and (tag := reference_tag(cfg, mixed_precision)):
        key += f"-{tag}"
    path = cache_root() / "ref_logps" / f"{key}.pt"
    if path.exists():
        cached = torch.load(path)
        return cached["chosen"], cached["rejected"], key, True
    if cfg.reference_model and cfg.reference_model != cfg.model:
        ref_model = acc.prepare(load_model(ref_name, cfg))
        chosen, rejected = compute_logps(ref_model, encoded, acc, pad_id, cfg.ref_batch_size, full_logits=cfg.full_logits)
        del ref_model
    else:
        with reference_mode(model, acc):
            chosen, rejected = compute_logps(model, encoded, acc, pad_id, cfg.ref_batch_size, full_logits=cfg.full_logits)
    if acc.is_main_process:
        write_atomic(path, lambda fh: torch.save({"chosen": chosen, "rejected": rejected}, fh))
    return chosen, rejected, key, False


# ------------------------------------------------------------ checkpointing
def _checkpoints(output: Path) -> list[Path]:
    root = output / "checkpoints"
    if not root.exists():
        return []
    done = [p for p in root.glob("step-*") if (p / "trainer_state.json").exists()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(acc: Accelerator, output: Path, step: int, keep: int, identity: dict | None = None) -> None:
    final = output / "checkpoints" / f"step-{step}"
    tmp = output / "checkpoints" / f".tmp-step-{step}"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps({"global_step": step, "identity": identity}, default=str))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)  # a checkpoint exists only once it is complete
        for old in _checkpoints(output)[:-keep]:
            shutil.rmtree(old)
    acc.wait_for_everyone()


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint (they are redone)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in lines))


# ------------------------------------------------------------------ schedule
def lr_lambda(schedule: str, warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)

    return f


def step_batches(n: int, cfg: TrainConfig, epoch: int, world: int) -> list[list[list[int]]]:
    """Dataset indices for each optimizer step of one epoch: [step][micro][pair].

    The order is a seeded permutation per epoch, so a resumed run sees exactly the
    same batches. Each micro-batch holds batch_size x world pairs; process p takes
    every world-th pair of it.
    """
    g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    micro = cfg.batch_size * world
    micros = [perm[i : i + micro] for i in range(0, n, micro)]
    return [micros[i : i + cfg.grad_accum] for i in range(0, len(micros), cfg.grad_accum)]


def forward_pairs(model, pairs, pad_id: int, acc: Accelerator, groups: int, full_logits: bool = False):
    """Summed log-probs of a micro-batch's pairs, in the given order, plus its token count.

    The pairs are sorted by length and run as ``groups`` concatenated forwards, so short
    pairs are not padded to the longest one; the loss (and so the gradient) is the same
    as with one forward. Returns (chosen, rejected, chosen_tokens, rejected_tokens, tokens).
    """
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i].prompt_ids) + max(len(pairs[i].chosen_ids), len(pairs[i].rejected_ids)))
    size = math.ceil(len(pairs) / max(1, groups))
    parts, tokens = [], 0
    for start in range(0, len(order), size):
        batch = {k: v.to(acc.device) for k, v in collate([pairs[i] for i in order[start : start + size]], pad_id).items()}
        with acc.autocast():
            parts.append(concatenated_forward(model, batch, full_logits))
        tokens += int(batch["attention_mask"].sum())
    inverse = torch.empty(len(order), dtype=torch.long, device=acc.device)
    inverse[torch.tensor(order, device=acc.device)] = torch.arange(len(order), device=acc.device)
    c, r, nc, nr = (torch.cat([p[k] for p in parts])[inverse] for k in range(4))
    return c, r, nc, nr, tokens


def pairs_seen(n: int, cfg: TrainConfig, world: int, steps_per_epoch: int, steps: int) -> int:
    """Pair gradients taken in the first ``steps`` optimizer steps: the budget that makes
    runs comparable (sDPO's per-chunk steps round differently from one pass over all data)."""
    total = 0
    for s in range(steps):
        epoch, k = divmod(s, steps_per_epoch)
        total += sum(len(m) for m in step_batches(n, cfg, epoch, world)[k])
    return total


# --------------------------------------------------------------------- train
def train(cfg: TrainConfig, pairs: list | None = None) -> dict:
    """Train per ``cfg``. ``pairs`` (already loaded PreferencePairs) replaces loading
    ``cfg.data``: wrappers such as sDPO train on a chosen subset this way."""
    from tqdm.auto import tqdm

    from align import modeling, tracking
    from harness.console import terminal

    modeling.check_settings(cfg)
    trackers = tracking.parse_report_to(cfg.report_to)
    acc = make_accelerator(cfg, log_with=trackers)
    set_seed(cfg.seed)
    spec, loss_settings = loss_kwargs(cfg)

    # Data first: bad data must fail in seconds, before any model is built or loaded.
    specs = cfg.data or default_preference_data()
    if pairs is None:
        pairs, report = load_preference_data(specs, skip_invalid=cfg.skip_invalid, dedupe=cfg.dedupe)
    else:
        report = LoadReport(n_loaded=len(pairs), per_source=dict(Counter(p.source for p in pairs)))
    model_name = resolve_model(cfg.model)
    ref_name = resolve_model(cfg.reference_model, "--reference-model") if cfg.reference_model else model_name
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    from transformers import AutoTokenizer  # imported only now: a data error is reported without waiting for it

    tokenizer = AutoTokenizer.from_pretrained(model_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    pad_id = tokenizer.pad_token_id
    lengths = effective_lengths(cfg, model_name, acc.print)
    encoded, too_long = encode_pairs(tokenizer, pairs, lengths["max_length"], lengths["max_prompt_length"], cfg.skip_invalid)
    truncation = truncation_summary(encoded)
    report_data(acc.print, report, truncation, len(too_long), lengths)
    identity = run_identity(cfg, fingerprint_encoded(encoded), model_fingerprint(model_name))
    ckpts = _checkpoints(output)
    resumed = None
    if cfg.resume and ckpts:
        diffs = check_resume(ckpts[-1], identity, cfg.resume_ignore_config)
        resumed = {"checkpoint": str(ckpts[-1]), "ignored_differences": diffs}
    elif not cfg.resume and ckpts and acc.is_main_process:
        shutil.rmtree(output / "checkpoints")  # a fresh run: an old run's checkpoints must never be resumed into it

    model = modeling.load_policy(model_name, cfg, acc)
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
        fused=_fused_adamw_ok(acc),
    )
    model, optimizer = acc.prepare(model, optimizer)
    if modeling.uses_lora(cfg):
        modeling.register_checkpoint_hooks(acc)

    ref_chosen = ref_rejected = None
    ref_key, ref_cached = None, False
    # Extra inputs a loss declares (align.losses.INPUTS): the pairs they are log-probs of, by name.
    extra_pairs = {"mismatched": mismatched_pairs(encoded, lengths["max_length"])} if "mismatched" in spec.needs else {}
    extra_ref = {}
    if spec.needs_reference:
        ref_chosen, ref_rejected, ref_key, ref_cached = reference_logps(
            cfg, model, ref_name, encoded, acc, pad_id, acc.mixed_precision
        )
        for name, pairs_ in extra_pairs.items():
            extra_ref[name] = reference_logps(cfg, model, ref_name, pairs_, acc, pad_id, acc.mixed_precision)[:2]

    world = acc.num_processes
    steps_per_epoch = len(step_batches(len(encoded), cfg, 0, world))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.lr_schedule, warmup, total_steps))
    acc.register_for_checkpointing(scheduler)

    global_step = 0
    metrics_path = output / "metrics.jsonl"
    if resumed:
        acc.load_state(str(ckpts[-1]))
        global_step = json.loads((ckpts[-1] / "trainer_state.json").read_text())["global_step"]
        resumed["step"] = global_step
        acc.print(f"resumed from {ckpts[-1]} (step {global_step})")
        if acc.is_main_process:
            _truncate_metrics(metrics_path, global_step)
    elif acc.is_main_process and metrics_path.exists():
        metrics_path.unlink()
    if trackers:
        tracking.start(acc, cfg.to_dict(), run_name=output.name, resumed_step=global_step)

    sums = {k: 0.0 for k in METRIC_KEYS}
    extra_sums: dict[str, float] = {}
    n_pairs = n_tokens = 0
    window_start = time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total_steps, initial=global_step, desc=f"train {cfg.method}",
               disable=not (cfg.progress and acc.is_local_main_process), file=terminal())
    epoch_cache: dict[int, list] = {}
    stopped_early = False

    while global_step < total_steps:
        epoch, in_epoch = divmod(global_step, steps_per_epoch)
        if epoch not in epoch_cache:
            epoch_cache = {epoch: step_batches(len(encoded), cfg, epoch, world)}
        micros = epoch_cache[epoch][in_epoch]
        mine = [m[acc.process_index :: world] for m in micros]
        step_pairs = sum(len(m) for m in mine)
        for j, idx in enumerate(mine):
            sync = j == len(mine) - 1
            ctx = acc.no_sync(model) if not sync else contextlib.nullcontext()
            with ctx:
                c, r, nc, nr, tokens = forward_pairs(model, [encoded[i] for i in idx], pad_id, acc, cfg.length_groups,
                                                            cfg.full_logits)
                lp = PairLogps(c, r, nc, nr)
                if spec.needs_reference:
                    lp.ref_chosen = ref_chosen[idx].to(c.device)
                    lp.ref_rejected = ref_rejected[idx].to(c.device)
                # Extra inputs cover the whole micro-batch of all processes (no gradient, so each process
                # computes them all): a batch statistic such as KTO's z is then the same as in one process.
                whole = micros[j]
                for name, pairs_ in extra_pairs.items():
                    with torch.no_grad():
                        ec, er, _, _, _ = forward_pairs(model, [pairs_[i] for i in whole], pad_id, acc, cfg.length_groups,
                                                         cfg.full_logits)
                    setattr(lp, f"{name}_chosen", ec)
                    setattr(lp, f"{name}_rejected", er)
                    if name in extra_ref:
                        setattr(lp, f"ref_{name}_chosen", extra_ref[name][0][whole].to(c.device))
                        setattr(lp, f"ref_{name}_rejected", extra_ref[name][1][whole].to(c.device))
                out = spec.fn(lp, **loss_settings)
                acc.backward(out.losses.sum() / step_pairs)
            _accumulate(sums, extra_sums, out, c, r, nc, nr)
            n_pairs += len(idx)
            n_tokens += tokens
        grad_norm = acc.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        global_step += 1
        bar.update(1)

        if global_step % cfg.logging_steps == 0 or global_step == total_steps:
            row = _reduce_window(acc, sums, extra_sums, n_pairs, n_tokens, time.perf_counter() - window_start)
            row.update(step=global_step, epoch=round(global_step / steps_per_epoch, 4),
                       lr=scheduler.get_last_lr()[0], grad_norm=float(grad_norm))
            if acc.is_main_process:
                with open(metrics_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
            if trackers:
                acc.log(row, step=global_step)
            bar.set_postfix(loss=f"{row['loss']:.4f}", acc=f"{row['rewards/accuracies']:.2f}")
            sums = {k: 0.0 for k in METRIC_KEYS}
            extra_sums = {}
            n_pairs = n_tokens = 0
            window_start = time.perf_counter()

        if cfg.stop_after_steps is not None and global_step >= cfg.stop_after_steps and global_step < total_steps:
            save_checkpoint(acc, output, global_step, cfg.save_total_limit, identity)
            stopped_early = True
            break
        if global_step % cfg.save_steps == 0 and global_step < total_steps:
            save_checkpoint(acc, output, global_step, cfg.save_total_limit, identity)
    bar.close()
    if trackers:
        acc.end_training()

    run = {
        "config": cfg.to_dict(),
        "model_path": model_name,
        "recipe": cfg.recipe,
        "loss": {"name": spec.name, "needs_reference": spec.needs_reference, **loss_settings},
        "data": {"specs": specs, "n_pairs": len(encoded), "per_source": report.per_source,
                 "n_skipped": report.n_skipped + len(too_long), "fingerprint": identity["data_fingerprint"],
                 "n_duplicates": report.n_duplicates, "n_deduped": report.n_deduped, "truncation": truncation},
        "lengths": lengths,
        "resumed": resumed,
        "base_model_fingerprint": identity["base_model_fingerprint"],
        "reference_cache": {"key": ref_key, "reused": ref_cached} if ref_key else None,
        "steps": global_step, "total_steps": total_steps, "world_size": world,
        "pairs_seen": pairs_seen(len(encoded), cfg, world, steps_per_epoch, global_step),
        "mixed_precision": acc.mixed_precision, "logps": logps_mode(model, cfg.full_logits), "versions": versions(),
        "completed": not stopped_early, "lora": modeling.lora_summary(model, acc), "trackers": trackers,
    }
    if stopped_early:
        return run
    save_final(acc, model, tokenizer, output, run, cfg)
    return run


def _fused_adamw_ok(acc: Accelerator) -> bool:
    """Fused AdamW (one kernel for all parameters) where plain tensors are trained: single process or DDP.

    On CPU the default per-parameter loop is ~100x slower for a small model's step; sharded setups
    (FSDP, DeepSpeed) keep the default, which they are known to work with.
    """
    from accelerate.utils import DistributedType

    plain = acc.distributed_type in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU)
    return plain and acc.device.type in ("cpu", "cuda")


def _accumulate(sums, extra_sums, out, c, r, nc, nr) -> None:
    c, r = c.detach().float(), r.detach().float()
    sums["loss"] += out.losses.detach().sum().item()
    sums["logps/chosen"] += c.sum().item()
    sums["logps/rejected"] += r.sum().item()
    sums["logps/chosen_mean"] += (c / nc.clamp(min=1)).sum().item()
    sums["logps/rejected_mean"] += (r / nr.clamp(min=1)).sum().item()
    sums["rewards/chosen"] += out.chosen_rewards.sum().item()
    sums["rewards/rejected"] += out.rejected_rewards.sum().item()
    sums["rewards/margins"] += (out.chosen_rewards - out.rejected_rewards).sum().item()
    sums["rewards/accuracies"] += (out.chosen_rewards > out.rejected_rewards).float().sum().item()
    for k, v in (out.extra or {}).items():
        extra_sums[k] = extra_sums.get(k, 0.0) + float(v) * len(c)


def _reduce_window(acc, sums, extra_sums, n_pairs, n_tokens, seconds) -> dict:
    keys = list(sums) + sorted(extra_sums)
    t = torch.tensor([sums[k] for k in sums] + [extra_sums[k] for k in sorted(extra_sums)] + [n_pairs, n_tokens],
                     dtype=torch.float64, device=acc.device)
    if acc.num_processes > 1:
        t = acc.reduce(t, reduction="sum")
    pairs, tokens = t[-2].item(), t[-1].item()
    row = {k: t[i].item() / max(pairs, 1) for i, k in enumerate(keys)}
    row["tokens_per_s"] = tokens / max(seconds, 1e-9)
    return row


def save_final(acc, model, tokenizer, output: Path, run: dict, cfg: TrainConfig) -> None:
    """Write the loadable model (or LoRA adapter, see align.modeling) into ``output`` itself,
    atomically file by file."""
    from align.modeling import clear_stale_outputs, save_policy

    acc.wait_for_everyone()
    tmp = output / ".tmp-final"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    save_policy(acc, model, tokenizer, tmp, cfg)
    if acc.is_main_process:
        clear_stale_outputs(output, cfg)
        for f in tmp.iterdir():
            if f.is_dir() and (output / f.name).exists():
                shutil.rmtree(output / f.name)
            f.replace(output / f.name)
        tmp.rmdir()
        write_json_atomic(output / "run.json", run)
        try:
            from align.plots import plot_training_curves

            plot_training_curves(output / "metrics.jsonl", output / "training_curves.png", title=run["loss"]["name"])
        except Exception as e:  # a plot must never cost a finished run
            print(f"warning: could not plot training curves: {e}")
    acc.wait_for_everyone()


def versions() -> dict:
    import accelerate
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "accelerate": accelerate.__version__, "cuda": torch.version.cuda, "platform": platform.platform()}
