"""Parity with TRL's DPOTrainer (trl 1.16) on the same tiny model and the same token ids.

TRL tokenises a small batch of real pairs (generated arithmetic + the shortest
HH-RLHF harmless-base test pairs); our encoder must produce the same ids, and
from those ids our summed log-probs, reference log-probs, sigmoid DPO loss,
rewards and gradients must equal TRL's. The policy is a perturbed copy of the
model so policy != reference and the loss is not the trivial log 2.

In bf16 both sides run the same bf16 backbone and LM head, then reduce in fp32
(TRL's fused head casts each logit tile to fp32; ``sequence_logps`` casts the
logits), so they agree to 1e-5. Dropping that cast, or scoring one prompt token,
moves the result by far more than the tolerance: ``test_tolerance_catches_*``
prove it, so the parity checks can fail.
"""
from __future__ import annotations

import pytest
import torch

trl = pytest.importorskip("trl")

from align.data import PreferencePair, arithmetic_preference_pairs, load_preference_data  # noqa: E402
from align.encoding import EncodedPair, collate, encode_pair  # noqa: E402
from align.logps import concatenated_forward, sequence_logps  # noqa: E402
from align.losses import PairLogps  # noqa: E402
from align.losses.dpo import dpo_loss  # noqa: E402

TOL = 1e-5
BETA = 0.1


def _pairs(data_dir) -> list[PreferencePair]:
    rows = arithmetic_preference_pairs(4, seed=3)
    pairs = [PreferencePair([{"role": "user", "content": r["prompt"]}], r["chosen"], r["rejected"], r["source"], f"gen:{i}")
             for i, r in enumerate(rows)]
    hh, _ = load_preference_data([str(data_dir / "hh_rlhf" / "harmless-base" / "test.jsonl.gz")], skip_invalid=True)
    # the two shortest of the first 200: real multi-turn text, different lengths, so padding is exercised
    hh = sorted(hh[:200], key=lambda p: len(str(p.prompt)) + len(p.chosen) + len(p.rejected))[:2]
    return pairs + hh


def _perturbed_policy(tiny_model, dtype):
    """The tiny model plus fixed noise: policy != reference, so log-ratios and losses are non-trivial."""
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_((torch.randn(p.shape, generator=gen) * 0.02).to(dtype))
    return policy


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def setup(request, tiny_model, data_dir, tmp_path_factory):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    dtype = getattr(torch, request.param)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    pairs = _pairs(data_dir)
    policy = _perturbed_policy(tiny_model, dtype)
    rows = [{"prompt": p.prompt, "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]
    args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), beta=BETA, per_device_train_batch_size=len(rows),
                     max_length=None, bf16=False, gradient_checkpointing=False, use_cpu=True, report_to="none",
                     save_strategy="no", disable_tqdm=True)
    # No ref_model given: TRL loads the unperturbed checkpoint from the policy's config path, in the policy's dtype.
    trainer = DPOTrainer(model=policy, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.model.train()
    tokenized = list(trainer.train_dataset)
    inputs = trainer.data_collator([{k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for ex in tokenized])
    # Our batch is built from TRL's ids, so both sides score exactly the same tokens.
    encoded = [EncodedPair(ex["prompt_ids"], ex["chosen_ids"], ex["rejected_ids"], p.source, i)
               for i, (p, ex) in enumerate(zip(pairs, tokenized))]
    ours = collate(encoded, tok.pad_token_id)
    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype)
    return dict(trainer=trainer, tok=tok, pairs=pairs, tokenized=tokenized, inputs=inputs, ours=ours,
                encoded=encoded, reference=reference, dtype=dtype)


def _close(a, b, what):
    diff = (a.float() - b.float()).abs().max().item()
    assert diff <= TOL, f"{what}: max |ours - TRL| = {diff:.3g} > {TOL}"


def test_encoding_and_batch_match_trl(setup):
    tok = setup["tok"]
    for i, (pair, ex) in enumerate(zip(setup["pairs"], setup["tokenized"])):
        e = encode_pair(tok, pair, i, max_length=4096, max_prompt_length=2048)
        assert (e.prompt_ids, e.chosen_ids, e.rejected_ids) == (ex["prompt_ids"], ex["chosen_ids"], ex["rejected_ids"]), i
    ours, theirs = setup["ours"], setup["inputs"]
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    assert torch.equal(ours["labels"] != -100, theirs["completion_mask"].bool())


def test_policy_and_reference_logps_match_trl(setup):
    trainer, inputs, ours = setup["trainer"], setup["inputs"], setup["ours"]
    trl_c, trl_r = trainer.compute_ref_log_probs(trainer.model, inputs)  # TRL's log-prob path, any model
    ref_c, ref_r = trainer.compute_ref_log_probs(trainer.ref_model, inputs)
    with torch.no_grad():
        c, r, nc, nr = concatenated_forward(trainer.model, ours)
        oc, orj, _, _ = concatenated_forward(setup["reference"], ours)
    _close(c, trl_c, "policy chosen logps")
    _close(r, trl_r, "policy rejected logps")
    _close(oc, ref_c, "reference chosen logps")
    _close(orj, ref_r, "reference rejected logps")
    assert torch.equal(nc + nr, inputs["completion_mask"][:, 1:].sum(1).view(2, -1).sum(0))
    assert (trl_c - ref_c).abs().max() > 0.1  # the perturbation is real: not comparing two copies of one model


def test_our_precompute_pass_matches_trl_reference(setup):
    """The trainer's cached-reference pass gives TRL's reference log-probs.

    In fp32 it runs in smaller batches (other padding widths) and still agrees to 1e-5; in bf16 the attention
    kernels round differently at another width (~1e-2 on a 500-token sum, for TRL too), so the batch is the same.
    """
    from align.config import TrainConfig
    from align.trainer import compute_logps, make_accelerator

    trainer = setup["trainer"]
    ref_c, ref_r = trainer.compute_ref_log_probs(trainer.ref_model, setup["inputs"])
    acc = make_accelerator(TrainConfig(mixed_precision="no"))
    batch_size = 4 if setup["dtype"] == torch.float32 else len(setup["encoded"])
    c, r = compute_logps(setup["reference"], setup["encoded"], acc, setup["tok"].pad_token_id, batch_size, desc="ref")
    _close(c, ref_c, "precomputed reference chosen logps")
    _close(r, ref_r, "precomputed reference rejected logps")


def test_dpo_loss_rewards_and_gradients_match_trl(setup):
    trainer, ours = setup["trainer"], setup["ours"]
    model = trainer.model
    with torch.no_grad():
        ref_c, ref_r, _, _ = concatenated_forward(setup["reference"], ours)

    model.zero_grad(set_to_none=True)
    trainer._metrics["train"].clear()
    trl_loss = trainer._compute_loss(model, setup["inputs"], return_outputs=False)  # live reference forward inside
    trl_loss.backward()
    trl_grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters()}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    model.zero_grad(set_to_none=True)
    c, r, nc, nr = concatenated_forward(model, ours)
    out = dpo_loss(PairLogps(c, r, nc, nr, ref_c, ref_r), beta=BETA)
    loss = out.losses.mean()  # TRL averages over pairs
    loss.backward()

    _close(loss.detach(), trl_loss.detach(), "DPO loss")
    assert abs(loss.item() - 0.6931) > 1e-3  # not the policy == reference value log 2
    margins = out.chosen_rewards - out.rejected_rewards
    for key, value in [("rewards/chosen", out.chosen_rewards.mean()), ("rewards/rejected", out.rejected_rewards.mean()),
                       ("rewards/margins", margins.mean()), ("rewards/accuracies", (margins > 0).float().mean()),
                       ("logps/chosen", c.detach().mean()), ("logps/rejected", r.detach().mean())]:
        _close(torch.tensor(value.item()), torch.tensor(metrics[key]), key)
    for name, p in model.named_parameters():
        g, t = p.grad.float(), trl_grads[name]
        # relative to the tensor's largest gradient: bf16 gradients carry 3 significant digits
        scale = t.abs().max().clamp(min=1e-8)
        rel = ((g - t).abs().max() / scale).item()
        assert rel <= (TOL if setup["dtype"] == torch.float32 else 1e-2), f"gradient of {name}: rel diff {rel:.3g}"


def test_tolerance_catches_a_missing_fp32_cast_and_a_mis_masked_prompt(setup):
    """The two bugs the parity checks exist for, injected here, both miss TRL by far more than TOL."""
    trainer, ours = setup["trainer"], setup["ours"]
    trl_c, _ = trainer.compute_ref_log_probs(trainer.model, setup["inputs"])
    b = trl_c.shape[0]
    with torch.no_grad():
        logits = trainer.model(input_ids=ours["input_ids"], attention_mask=ours["attention_mask"]).logits
    labels = ours["labels"].clone()
    for row in range(labels.shape[0]):  # also score the last prompt token
        first = int((labels[row] != -100).nonzero()[0])
        labels[row, first - 1] = ours["input_ids"][row, first - 1]
    mis_masked, _ = sequence_logps(logits, labels)
    assert (mis_masked[:b] - trl_c).abs().max() > 1e-3
    if setup["dtype"] == torch.bfloat16:
        lg, tgt = logits[:, :-1], ours["labels"][:, 1:]  # log-softmax left in bf16
        mask = tgt != -100
        picked = torch.gather(lg, 2, tgt.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
        no_cast = ((picked - torch.logsumexp(lg, -1)) * mask).sum(-1).float()
        assert (no_cast[:b] - trl_c).abs().max() > 1e-2


# --------------------------------------------------- the comparison zoo vs TRL
# Same tiny model, same batch, same token ids (TRL's own tokenisation and collation; our
# ``sequence_logps`` and loss on them). TRL's CPO, ORPO and DPO-"sft" average the NLL over all
# chosen tokens of a batch, ours per answer: equal on one pair, so TRL's side runs pair by pair
# and the mean of its per-pair losses (and gradients) is compared with our batch mean.
PARITY: dict[str, tuple[float, float]] = {}  # method -> (max |Δ loss|, max |Δ grad|), printed at the end


def _grads(model):
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}


def _trl_per_pair(model, batches, compute):
    model.zero_grad(set_to_none=True)
    total = 0.0
    for inputs in batches:
        loss = compute(inputs) / len(batches)
        loss.backward()
        total += loss.detach()
    return total, _grads(model)


def _ours(model, compute):
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    return loss.detach(), _grads(model)


def _compare(method, ours, theirs):
    (lo, go), (lt, gt) = ours, theirs
    assert go.keys() == gt.keys()
    dl = abs(float(lo) - float(lt))
    dg = max((go[k] - gt[k]).abs().max().item() for k in go)
    PARITY[method] = (dl, dg)
    print(f"TRL parity {method}: loss {float(lt):.6g}, max |d loss| {dl:.2e}, max |d grad| {dg:.2e}")
    # relative for the loss: SLiC's hinge on summed log-probs is ~1e2 here, where fp32 resolves ~1e-5
    assert dl <= TOL * max(1.0, abs(float(lt))) and dg <= TOL, f"{method}: loss diff {dl:.3g}, grad diff {dg:.3g}"
    assert max(v.abs().max().item() for v in gt.values()) > 1e-4  # gradients are not trivially zero


def _halves(model, input_ids, attention_mask, labels):
    from align.logps import sequence_logps

    logps, counts = sequence_logps(model(input_ids=input_ids, attention_mask=attention_mask).logits, labels)
    b = logps.shape[0] // 2
    return logps[:b], logps[b:], counts[:b], counts[b:]


def _rows(pairs):
    return [{"prompt": p.prompt, "chosen": [{"role": "assistant", "content": p.chosen}],
             "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]


@pytest.mark.parametrize("loss_type", ["ipo", "sft"])
def test_dpo_trainer_loss_types_match_ipo_and_sft(setup, loss_type):
    """TRL's DPOTrainer ``ipo`` averages log-ratios per token: our ipo with per_token=true (τ = TRL's β)."""
    from align.losses import get_loss

    if setup["dtype"] != torch.float32:
        pytest.skip("loss parity in fp32; the bf16 log-prob parity is tested above")
    trainer, ours, model = setup["trainer"], setup["ours"], setup["trainer"].model
    with torch.no_grad():
        ref_c, ref_r, _, _ = concatenated_forward(setup["reference"], ours)
    trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
    try:
        batches = [trainer.data_collator([{k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}])
                   for ex in setup["tokenized"]]
        theirs = _trl_per_pair(model, batches, lambda b: trainer._compute_loss(model, b, return_outputs=False))
    finally:
        trainer.loss_types, trainer.loss_weights = ["sigmoid"], [1.0]
    kw = {"tau": BETA, "per_token": True} if loss_type == "ipo" else {}

    def mine():
        c, r, nc, nr = concatenated_forward(model, ours)
        return get_loss(loss_type).fn(PairLogps(c, r, nc, nr, ref_c, ref_r), **kw).losses.mean()

    _compare(loss_type, _ours(model, mine), theirs)


@pytest.fixture(scope="module")
def fp32_policy_and_pairs(tiny_model, data_dir):
    from transformers import AutoTokenizer

    return _perturbed_policy(tiny_model, torch.float32), AutoTokenizer.from_pretrained(tiny_model), _pairs(data_dir)


@pytest.mark.parametrize("method,trl_kw,ours_kw", [
    ("cpo", dict(loss_type="sigmoid", beta=0.5, cpo_alpha=1.0), dict(beta=0.5, alpha=1.0)),
    ("simpo", dict(loss_type="simpo", beta=2.5, simpo_gamma=1.0, cpo_alpha=0.0), dict(beta=2.5, gamma=1.0)),
    ("slic", dict(loss_type="hinge", beta=1.0, cpo_alpha=1.0), dict(delta=1.0, nll_weight=1.0)),
    ("orpo", dict(beta=0.7), dict(or_weight=0.7)),
])
def test_cpo_simpo_slic_orpo_match_trl(fp32_policy_and_pairs, tmp_path, method, trl_kw, ours_kw):
    """TRL's CPOTrainer (sigmoid = CPO, simpo = SimPO without NLL, hinge = SLiC-HF with δ = 1/β) and ORPOTrainer
    (whose NLL also covers the prompt tokens; ours, like the ORPO paper's L_SFT, only the answer)."""
    from datasets import Dataset

    from align.losses import get_loss

    policy, tok, pairs = fp32_policy_and_pairs
    common = dict(output_dir=str(tmp_path), per_device_train_batch_size=len(pairs), max_length=4096, bf16=False,
                  use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True)
    if method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer as Trainer

        args = ORPOConfig(**common, **trl_kw)
    else:
        from trl.experimental.cpo import CPOConfig, CPOTrainer as Trainer

        args = CPOConfig(**common, **trl_kw)
    trainer = Trainer(model=policy, args=args, train_dataset=Dataset.from_list(_rows(pairs)), processing_class=tok)
    model = trainer.model
    model.train()
    rows = list(trainer.train_dataset)
    theirs = _trl_per_pair(model, [trainer.data_collator([row]) for row in rows],
                           lambda b: trainer.compute_loss(model, b))
    batch = trainer.data_collator(rows)
    pad = trainer.padding_value if method == "orpo" else trainer.pad_token_id
    cb = trainer.concatenated_inputs(batch, is_encoder_decoder=False, padding_value=pad, device=torch.device("cpu"))

    def mine():
        from align.logps import sequence_logps

        ids, mask = cb["concatenated_input_ids"], cb["concatenated_attention_mask"]
        logits = model(input_ids=ids, attention_mask=mask).logits
        logps, n = sequence_logps(logits, cb["concatenated_labels"])
        b = logps.shape[0] // 2
        loss = get_loss(method).fn(PairLogps(logps[:b], logps[b:], n[:b], n[b:]), **ours_kw).losses.mean()
        if method == "orpo":
            # TRL's ORPO takes the NLL over prompt + answer, ours (as the paper's L_SFT) over the answer:
            # swap that one term to compare the rest exactly.
            full, nf = sequence_logps(logits[:b], ids[:b].masked_fill(mask[:b] == 0, -100))
            loss = loss + (logps[:b] / n[:b]).mean() - (full / nf).mean()
        return loss

    _compare(method, _ours(model, mine), theirs)


def test_kto_matches_trl_on_paired_data(fp32_policy_and_pairs, tiny_model, tmp_path):
    """TRL's KTOTrainer on the unpaired form of the batch (every chosen answer desirable, every rejected one
    undesirable, one batch): its KL rows (completions rotated by one) are our mismatched pairs, its mean over
    the 2B examples our mean over the B pairs of their two examples' mean."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import KTOConfig, KTOTrainer

    from align.losses import get_loss

    policy, tok, pairs = fp32_policy_and_pairs
    rows = [{"prompt": p.prompt, "completion": [{"role": "assistant", "content": p.chosen}], "label": True} for p in pairs]
    rows += [{"prompt": p.prompt, "completion": [{"role": "assistant", "content": p.rejected}], "label": False}
             for p in pairs]
    args = KTOConfig(output_dir=str(tmp_path), per_device_train_batch_size=len(rows), max_length=None, bf16=False,
                     use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True, beta=0.1,
                     desirable_weight=1.0, undesirable_weight=1.0, train_sampling_strategy="sequential")
    trainer = KTOTrainer(model=policy, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    model = trainer.model
    model.train()
    batch = trainer.data_collator(list(trainer.train_dataset))
    assert batch["label"].tolist() == [True] * len(pairs) + [False] * len(pairs)
    theirs = _trl_per_pair(model, [batch], lambda b: trainer._compute_loss(model, b, return_outputs=False))
    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)

    def split(m, prefix=""):
        ids = batch[prefix + "input_ids"]
        return _halves(m, ids, batch[prefix + "attention_mask"], ids.masked_fill(batch[prefix + "completion_mask"] == 0, -100))

    with torch.no_grad():
        ref = split(reference)
        kl = split(model, "KL_")
        ref_kl = split(reference, "KL_")

    def mine():
        c, r, nc, nr = split(model)
        lp = PairLogps(c, r, nc, nr, ref[0], ref[1], kl[0], kl[1], ref_kl[0], ref_kl[1])
        return get_loss("kto").fn(lp, beta=0.1).losses.mean()

    assert float((kl[0] - ref_kl[0]).abs().max()) > 1e-3  # the KL estimate is not trivially 0
    _compare("kto", _ours(model, mine), theirs)
