"""Stepwise DPO (Kim et al. 2024, "sDPO: Don't Use Your Data All at Once", arXiv:2403.19270).

The data is cut into T chunks. Step t trains M_{t-1} on chunk t with M_{t-1} itself
as the frozen reference, giving M_t; M_0 is the base model. Each step is an ordinary
``align.trainer.train`` run (its reference pass uses the starting model, i.e. M_{t-1}),
so any registered loss works as the inner loss (dpo by default; dpop; dgpo, which has
no reference, so only the curriculum is left of sDPO).

Partitions:
  * ``easy-to-hard`` (the paper's default): one chunk per data ``source``, ordered by
    M_0's reward accuracy on it (share of pairs with log π(y_w|x) > log π(y_l|x)),
    highest first. With a single source: T chunks by quantiles of that per-pair
    margin, largest margins (easiest) first.
  * ``random`` (the paper's ablation): a seeded shuffle cut into chunks of the same
    sizes as the per-source chunks (or T equal chunks for one source).
  * ``given``: the sources in the order supplied (one source: T contiguous slices).

Output directory:
  ``step-1/ ... step-T/``  each a loadable model with its own metrics.jsonl and run.json;
  ``sdpo.json``            the partition, each chunk's size and M_0 reward accuracy, each
                           step's reference fingerprint, and the γ_ref table: mean
                           log π_k(y_w|x) − log π_k(y_l|x) of M_0 (=S), M_1, ... on every chunk
                           (the paper's Figure 2);
  the final model M_T itself, ``run.json`` (M_T's, plus an ``sdpo`` block) and a merged
  ``metrics.jsonl`` whose ``step`` counts across all sDPO steps.
Resume (``cfg.resume``): finished steps are skipped, the unfinished one resumes from
its own checkpoints, the partition is read back from ``sdpo.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
from pathlib import Path

import torch

from align.atomic import write_atomic
from align.config import TrainConfig
from align.data import DataError, default_preference_data, fingerprint_pairs, load_preference_data
from align.encoding import encode_pair, fingerprint_encoded
from align.fingerprint import model_fingerprint
from align.losses import get_loss
from align.methods import Method, register_wrapper

PARTITIONS = ("easy-to-hard", "random", "given")
DEFAULT_SINGLE_SOURCE_STEPS = 2  # the paper trains in two steps
_STEP_FILES_NOT_COPIED = {"run.json", "metrics.jsonl", "training_curves.png"}


# ---------------------------------------------------------------- partition
def _split_even(indices: list[int], t: int) -> list[list[int]]:
    """Cut a list into t contiguous pieces whose sizes differ by at most one."""
    n = len(indices)
    bounds = [round(k * n / t) for k in range(t + 1)]
    return [indices[bounds[k] : bounds[k + 1]] for k in range(t)]


def partition_pairs(sources: list[str], margins: torch.Tensor, mode: str, steps: int | None = None,
                    seed: int = 42) -> list[dict]:
    """Chunks in training order: ``[{"name", "indices"}]``; indices sorted within a chunk.

    ``margins[i]`` is M_0's log π(y_w|x) − log π(y_l|x) for pair i.
    """
    if mode not in PARTITIONS:
        raise ValueError(f"unknown sDPO partition '{mode}'; choose one of {', '.join(PARTITIONS)}")
    n = len(sources)
    if n == 0:
        raise ValueError("sDPO: no pairs to partition")
    names = list(dict.fromkeys(sources))  # sources in order of first appearance
    margins = margins.float()
    if len(names) > 1:
        if steps is not None and steps != len(names):
            raise ValueError(f"sDPO: --sdpo-steps {steps} but the data has {len(names)} sources "
                             f"({', '.join(names)}); with several sources there is one step per source")
        by_source = {s: [i for i in range(n) if sources[i] == s] for s in names}
        if mode == "easy-to-hard":
            def difficulty(s):
                m = margins[by_source[s]]
                return (-(m > 0).float().mean().item(), -m.mean().item(), s)

            order = sorted(names, key=difficulty)
            return [{"name": s, "indices": by_source[s]} for s in order]
        if mode == "given":
            return [{"name": s, "indices": by_source[s]} for s in names]
        perm = list(range(n))
        random.Random(seed).shuffle(perm)
        chunks, start = [], 0
        for k, s in enumerate(names):
            size = len(by_source[s])
            chunks.append({"name": f"random-{k + 1}", "indices": sorted(perm[start : start + size])})
            start += size
        return chunks

    t = steps or DEFAULT_SINGLE_SOURCE_STEPS
    if not 1 <= t <= n:
        raise ValueError(f"sDPO: --sdpo-steps must be between 1 and the number of pairs ({n}), got {t}")
    if mode == "easy-to-hard":
        # Quantiles of the margin, largest first; ties broken by dataset position.
        order = sorted(range(n), key=lambda i: (-margins[i].item(), i))
        pieces, label = _split_even(order, t), "quantile"
    elif mode == "given":
        pieces, label = _split_even(list(range(n)), t), "slice"
    else:
        perm = list(range(n))
        random.Random(seed).shuffle(perm)
        pieces, label = _split_even(perm, t), "random"
    return [{"name": f"{names[0]}:{label}-{k + 1}", "indices": sorted(p)} for k, p in enumerate(pieces)]


def chunk_stats(indices: list[int], chosen: torch.Tensor, rejected: torch.Tensor) -> dict:
    """Mean γ = log π(y_w|x) − log π(y_l|x) and reward accuracy (share with γ > 0)."""
    g = (chosen[indices] - rejected[indices]).double()
    return {"gamma_mean": g.mean().item(), "reward_accuracy": (g > 0).double().mean().item(),
            "chosen_mean": chosen[indices].double().mean().item()}


# ------------------------------------------------------- whole-data log-probs
def _encode_all(cfg: TrainConfig, tokenizer, pairs):
    """Encode every pair; with skip_invalid, drop (and count) the ones that do not fit."""
    kept, encoded, dropped = [], [], 0
    for p in pairs:
        try:
            e = encode_pair(tokenizer, p, len(encoded), cfg.max_length, cfg.max_prompt_length)
        except DataError:
            if not cfg.skip_invalid:
                raise
            dropped += 1
            continue
        kept.append(p)
        encoded.append(e)
    return kept, encoded, dropped


def model_logps(cfg: TrainConfig, model_path: str, encoded, pad_id: int, cache_dir: Path):
    """Summed log-probs of every chosen/rejected answer under one model, cached per model
    fingerprint in ``cache_dir`` so a resumed run does not redo them."""
    from align.modeling import load_for_inference
    from align.trainer import compute_logps, make_accelerator

    acc = make_accelerator(cfg)
    path = cache_dir / f"logps-{model_fingerprint(model_path)}-{fingerprint_encoded(encoded)}-{acc.mixed_precision}.pt"
    if path.exists():
        saved = torch.load(path)
        return saved["chosen"], saved["rejected"]
    model = acc.prepare(load_for_inference(model_path, torch.float32, "cpu"))  # a model or a LoRA adapter dir
    chosen, rejected = compute_logps(model, encoded, acc, pad_id, cfg.ref_batch_size, desc=f"sDPO log-probs {Path(model_path).name}",
                                     full_logits=cfg.full_logits)
    del model
    if acc.is_main_process:
        write_atomic(path, lambda fh: torch.save({"chosen": chosen, "rejected": rejected}, fh))
    return chosen, rejected


# ------------------------------------------------------------------ outputs
def _is_main() -> bool:
    """Under ``accelerate launch`` only rank 0 writes the shared sDPO files."""
    return int(os.environ.get("RANK", "0")) == 0


def _write_json(path: Path, obj) -> None:
    if not _is_main():
        return
    text = json.dumps(obj, indent=2, default=str)
    # Keep index lists on one line: the file stays readable with thousands of pairs.
    text = re.sub(r"\[\s+(-?\d+(?:,\s+-?\d+)*)\s+\]", lambda m: "[" + ", ".join(m.group(1).split(",\n")).replace(" ", "").replace(",", ", ") + "]", text)
    write_atomic(path, text)


def _merge_metrics(output: Path, n_steps: int) -> None:
    """One metrics.jsonl across all sDPO steps: ``step`` is global, ``sdpo_step`` says which."""
    if not _is_main():
        return
    rows, offset = [], 0
    for t in range(1, n_steps + 1):
        path = output / f"step-{t}" / "metrics.jsonl"
        if not path.exists():
            break
        local = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
        for r in local:
            rows.append({**r, "step": offset + r["step"], "sdpo_step": t, "step_in_sdpo_step": r["step"]})
        offset += max((r["step"] for r in local), default=0)
    write_atomic(output / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def _publish_final(output: Path, step_dir: Path) -> None:
    """Copy M_T's model and tokenizer files into ``output`` itself, each file atomically."""
    if not _is_main():
        return
    for f in sorted(step_dir.iterdir()):
        if f.is_file() and f.name not in _STEP_FILES_NOT_COPIED and not f.name.startswith("."):
            tmp = output / f".{f.name}.tmp{os.getpid()}"
            shutil.copyfile(f, tmp)
            tmp.replace(output / f.name)
    if (step_dir / "adapter").is_dir():  # LoRA: step T's adapter (its base is M_{T-1})
        tmp = output / f".adapter.tmp{os.getpid()}"
        shutil.copytree(step_dir / "adapter", tmp)
        if (output / "adapter").exists():
            shutil.rmtree(output / "adapter")
        tmp.replace(output / "adapter")


def _completed(step_dir: Path) -> bool:
    run = step_dir / "run.json"
    return run.exists() and json.loads(run.read_text()).get("completed", False)


# ---------------------------------------------------------------------- run
def train_sdpo(cfg: TrainConfig, loss: str | None = None, steps: int | None = None, partition: str | None = None) -> dict:
    """Run sDPO; returns the summary also written to ``sdpo.json``. ``loss``, ``steps`` and ``partition``
    default to the configuration's inner loss, ``sdpo_steps`` and ``sdpo_partition``."""
    from align.encoding import truncation_summary
    from align.trainer import ResumeMismatch, effective_lengths, make_accelerator, report_data, resolve_model, train

    from align.modeling import check_settings

    check_settings(cfg)
    loss = loss or cfg.loss.get("name") or "dpo"
    steps = steps if steps is not None else cfg.sdpo_steps
    partition = partition or cfg.sdpo_partition or "easy-to-hard"
    spec = get_loss(loss)
    if partition not in PARTITIONS:
        raise ValueError(f"unknown sDPO partition '{partition}'; choose one of {', '.join(PARTITIONS)}")
    if cfg.reference_model:
        raise ValueError("sDPO: the reference of step t is M_{t-1}, so --reference-model does not apply")
    # Data first: bad data must fail in seconds, before any model is built or loaded.
    specs = cfg.data or default_preference_data()
    pairs, report = load_preference_data(specs, skip_invalid=cfg.skip_invalid, dedupe=cfg.dedupe)
    base = resolve_model(cfg.model)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    from transformers import AutoTokenizer  # imported only now: a data error is reported without waiting for it

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lengths = effective_lengths(cfg, base, print if _is_main() else (lambda *_: None))
    pairs, encoded, too_long = _encode_all(dataclasses.replace(cfg, max_length=lengths["max_length"],
                                                               max_prompt_length=lengths["max_prompt_length"]), tokenizer, pairs)
    if _is_main():  # truncation is reported by each step's own run, per chunk
        report_data(print, report, None, too_long, lengths)
    cache_dir = output / "sdpo-logps"
    state_path = output / "sdpo.json"

    identity = {"loss": loss, "partition": partition, "requested_steps": steps, "seed": cfg.seed,
                "data_fingerprint": fingerprint_pairs(pairs), "base_model": base,
                "base_fingerprint": model_fingerprint(base)}
    if cfg.resume and state_path.exists():
        state = json.loads(state_path.read_text())
        changed = [k for k, v in identity.items() if state["identity"].get(k) != v]
        if changed:
            raise ResumeMismatch(f"{state_path}: cannot resume, the run's {', '.join(changed)} changed")
    else:
        if _is_main():
            for old in output.glob("step-*"):
                if old.is_dir():
                    shutil.rmtree(old)  # a fresh run: stale steps from an earlier run would mislead
        make_accelerator(cfg).wait_for_everyone()
        chosen0, rejected0 = model_logps(cfg, base, encoded, tokenizer.pad_token_id, cache_dir)
        chunks = partition_pairs([p.source for p in pairs], chosen0 - rejected0, partition, steps, cfg.seed)
        for c in chunks:
            s = chunk_stats(c["indices"], chosen0, rejected0)
            c.update(size=len(c["indices"]), reward_accuracy_M0=s["reward_accuracy"], gamma_mean_M0=s["gamma_mean"],
                     sources={src: sum(pairs[i].source == src for i in c["indices"]) for src in dict.fromkeys(pairs[i].source for i in c["indices"])})
        state = {"identity": identity, "n_pairs": len(pairs), "n_skipped": report.n_skipped + too_long,
                 "per_source": report.per_source, "chunks": chunks, "steps": [], "gamma_ref": None, "completed": False}
        _write_json(state_path, state)

    chunks = state["chunks"]
    n_steps = len(chunks)
    models = [base]
    state["steps"] = state.get("steps", [])[:0]  # rebuilt below from what is on disk
    for t, chunk in enumerate(chunks, start=1):
        step_dir = output / f"step-{t}"
        prev = models[-1]
        info = {"step": t, "chunk": chunk["name"], "n_pairs": chunk["size"], "output": str(step_dir),
                "reference_model": prev, "reference_fingerprint": model_fingerprint(prev) if spec.needs_reference else None,
                "start_fingerprint": model_fingerprint(prev)}
        if not (cfg.resume and _completed(step_dir)):
            # LoRA: M_t is merged (it is the next step's start and reference); only M_T may stay an adapter.
            step_cfg = dataclasses.replace(cfg, method=loss, loss={**cfg.loss, "name": loss}, model=prev,
                                           output=str(step_dir), reference_model=None, sdpo_steps=None,
                                           sdpo_partition=None, merge_lora=cfg.merge_lora or t < n_steps)
            run = train(step_cfg, pairs=[pairs[i] for i in chunk["indices"]])
            if not run["completed"]:  # stopped on purpose (stop_after_steps); resume continues here
                state["steps"].append({**info, "completed": False})
                _write_json(state_path, state)
                _merge_metrics(output, n_steps)
                return state
        run = json.loads((step_dir / "run.json").read_text())
        info.update(completed=True, optimizer_steps=run["steps"], final_fingerprint=model_fingerprint(str(step_dir)))
        state["steps"].append(info)
        models.append(str(step_dir))
        _write_json(state_path, state)

    # γ table: every model M_0..M_T on every chunk (rows M_0..M_{T-1} are the references).
    table = []
    for k, path in enumerate(models):
        c, r = model_logps(cfg, path, encoded, tokenizer.pad_token_id, cache_dir)
        row = {"model": "M_0 (S)" if k == 0 else f"M_{k}", "path": path, "is_reference_of_step": k + 1 if k < n_steps else None}
        row["chunks"] = [{"chunk": ch["name"], **chunk_stats(ch["indices"], c, r)} for ch in chunks]
        table.append(row)
    state["gamma_ref"] = table
    state["completed"] = True

    final = output / f"step-{n_steps}"
    _publish_final(output, final)
    _merge_metrics(output, n_steps)
    run = json.loads((final / "run.json").read_text())
    # The published run describes the whole sDPO run: its base is M_0, its budget all steps, its data all chunks.
    step_runs = [json.loads((output / f"step-{t}" / "run.json").read_text()) for t in range(1, n_steps + 1)]
    run["config"] = {**run["config"], "output": str(output), "model": cfg.model, "method": "sdpo"}
    run["model_path"] = base
    run["base_model_fingerprint"] = model_fingerprint(base)
    run["steps"] = run["total_steps"] = sum(r["steps"] for r in step_runs)
    run["pairs_seen"] = sum(r.get("pairs_seen", 0) for r in step_runs)
    run["data"] = {"specs": specs, "n_pairs": len(encoded), "per_source": report.per_source,
                   "n_skipped": report.n_skipped + too_long, "fingerprint": fingerprint_encoded(encoded),
                   "n_duplicates": report.n_duplicates, "n_deduped": report.n_deduped,
                   "truncation": truncation_summary(encoded)}
    run["lengths"] = lengths
    run["sdpo"] = {"loss": loss, "partition": partition, "steps": n_steps, "final_model_from": final.name,
                   "chunks": [{"name": c["name"], "size": c["size"]} for c in chunks]}
    _write_json(output / "run.json", run)
    _write_json(state_path, state)
    try:
        from align.plots import plot_training_curves

        if _is_main():
            plot_training_curves(output / "metrics.jsonl", output / "training_curves.png", title=f"sDPO ({loss}, {partition})")
    except Exception as e:  # a plot must never cost a finished run
        print(f"warning: could not plot training curves: {e}")
    return state


def _report(cfg: TrainConfig, state: dict) -> str:
    if not state["completed"]:
        return f"sDPO stopped before the end; continue with --resume ({cfg.output}/sdpo.json)"
    return (format_gamma_table(state) + f"\nsDPO: {len(state['chunks'])} steps; final model written to {cfg.output} "
            f"(steps in {cfg.output}/step-*)")


register_wrapper(Method("sdpo", train_sdpo, wraps_loss=True, default_loss="dpo", recipe="sdpo",
                        config_fields=("sdpo_steps", "sdpo_partition"), report=_report,
                        doc="stepwise DPO (Kim et al. 2024): T chunks, step t trains M_{t-1} with M_{t-1} as reference"))


def format_gamma_table(state: dict) -> str:
    """The γ table as text: rows are models, columns chunks."""
    chunks = [c["name"] for c in state["chunks"]]
    lines = ["model".ljust(10) + "".join(n[-18:].rjust(20) for n in chunks)]
    for row in state["gamma_ref"] or []:
        lines.append(row["model"].ljust(10) + "".join(f"{c['gamma_mean']:20.3f}" for c in row["chunks"]))
    return "\n".join(lines)
