"""Defects found by trying to break the harness (issue 12): each test failed before its fix.

Bad-input CLI tests run in-process with a fresh, empty HARNESS_CACHE and assert that no model was
built: bad data and bad model paths must fail in seconds, before the tiny model's 300 pre-training steps.
"""
import json
import time
from pathlib import Path

import pytest

import align.sdpo  # noqa: F401  imported here so the timed CLI calls below measure work, not torch's import
import align.trainer  # noqa: F401
from align.config import TrainConfig
from align.data import DataError, arithmetic_preference_pairs, load_preference_data, write_jsonl
from harness.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"prompt": "What is 2 + 2?", "chosen": "2 + 2 = 4. The answer is 4.", "rejected": "2 + 2 = 5. The answer is 5."}


def write_rows(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty HARNESS_CACHE: the default tiny model would have to be built into it."""
    cache = tmp_path / "fresh-cache"
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    return cache


def no_model_built(cache: Path) -> bool:
    return not (cache / "tiny-base").exists() and not list(cache.glob("tiny-base.tmp-*"))


def cli(capsys, *argv):
    """Run the CLI in-process: (exit code, stdout, stderr, seconds)."""
    start = time.perf_counter()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err, time.perf_counter() - start


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    return str(write_jsonl(arithmetic_preference_pairs(32, seed=5), tmp_path_factory.mktemp("rel") / "arith.jsonl"))


def tcfg(tiny_model, prefs, out, **kw):
    base = dict(method="dpo", model=str(tiny_model), data=[prefs], output=str(out), lr=1e-3, batch_size=8,
                max_steps=4, max_length=96, max_prompt_length=48, save_steps=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


# ------------------------------------------------------------------ item 4: resume checks its checkpoint
def test_resume_refuses_a_checkpoint_trained_differently(tiny_model, prefs, tmp_path, capsys):
    from align.trainer import ResumeMismatch, train

    out = tmp_path / "run"
    train(tcfg(tiny_model, prefs, out, stop_after_steps=2))
    state = json.loads((out / "checkpoints" / "step-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and len(state["identity"]["data_fingerprint"]) == 16
    assert state["identity"]["config"]["lr"] == 1e-3 and "output" not in state["identity"]["config"]

    with pytest.raises(ResumeMismatch) as e:
        train(tcfg(tiny_model, prefs, out, method="dpop", lr=5e-4, resume=True))
    msg = str(e.value)
    assert "method: 'dpo' in the checkpoint, 'dpop' now" in msg and "lr: 0.001 in the checkpoint, 0.0005 now" in msg
    assert "data_fingerprint" not in msg  # same data, same tokens

    other = write_jsonl(arithmetic_preference_pairs(32, seed=6), tmp_path / "other.jsonl")
    with pytest.raises(ResumeMismatch, match="data_fingerprint") as e:
        train(tcfg(tiny_model, prefs, out, data=[str(other)], resume=True))
    assert "lr:" not in str(e.value)

    # the CLI: exit 2, the differing field named on stderr
    code, _, err, _ = cli(capsys, "train", "--method", "dpo", "--model", tiny_model, "--data", prefs, "--output", out,
                          "--recipe", "tiny", "--max-steps", 4, "--lr", 0.002, "--resume", "--no-progress")
    assert code == 2 and "cannot resume" in err and "lr: 0.001 in the checkpoint, 0.002 now" in err

    # runtime-only fields are not differences; the resumed run records what it resumed from
    run = train(tcfg(tiny_model, prefs, out, resume=True, logging_steps=3, save_steps=5, save_total_limit=1,
                     progress=True))
    assert run["completed"] and run["resumed"] == {"checkpoint": str(out / "checkpoints" / "step-2"),
                                                   "ignored_differences": {}, "step": 2}


def test_resume_ignore_config_continues_and_records_the_differences(tiny_model, prefs, tmp_path):
    from align.trainer import train

    out = tmp_path / "run"
    train(tcfg(tiny_model, prefs, out, stop_after_steps=2))
    run = train(tcfg(tiny_model, prefs, out, lr=5e-4, resume=True, resume_ignore_config=True))
    assert run["completed"] and run["steps"] == 4
    assert run["resumed"]["ignored_differences"] == {"lr": [0.001, 0.0005]}
    assert json.loads((out / "run.json").read_text())["resumed"]["ignored_differences"] == {"lr": [0.001, 0.0005]}


# ------------------------------------------------ item 5: the committed results come from today's tiny model
def test_fresh_tiny_model_has_the_fingerprint_of_the_committed_base_run(tiny_model):
    """The committed results/ and leaderboards/ must come from the embedded model this code builds."""
    from align.fingerprint import model_fingerprint

    bases = set()
    for f in sorted((ROOT / "results").glob("*/*.json")):
        if f.name.endswith(".raw.json"):
            continue
        run = json.loads(f.read_text())["run"]
        if str(run.get("base_model", "")).endswith("tiny-base"):
            bases.add(run["base_model_fingerprint"])
    assert len(bases) == 1, f"committed results use {len(bases)} different tiny base models: {sorted(bases)}"
    assert model_fingerprint(str(tiny_model)) == bases.pop()


# ------------------------------------------------- item 6: tracebacks where FILE:LINE: field was promised
def test_data_path_that_is_a_directory(tmp_path):
    (tmp_path / "prefs").mkdir()
    with pytest.raises(DataError, match=r"prefs: is a directory"):
        load_preference_data([str(tmp_path / "prefs")])


def test_lone_surrogate_is_a_data_error_and_skippable(tmp_path):
    path = write_rows(tmp_path / "s.jsonl", [GOOD, '{"prompt": "p", "chosen": "a\\ud800b", "rejected": "r"}'])
    with pytest.raises(DataError) as e:
        load_preference_data([str(path)])
    assert str(e.value).startswith(f"{path}:2: field 'chosen': not valid Unicode text (lone surrogate \\ud800")
    pairs, report = load_preference_data([str(path)], skip_invalid=True)
    assert len(pairs) == 1 and report.n_skipped == 1 and "field 'chosen'" in report.errors[0]
    prompt_bad = write_rows(tmp_path / "p.jsonl", ['{"prompt": "\\udfff", "chosen": "c", "rejected": "r"}'])
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'prompt': not valid Unicode"):
        load_preference_data([str(prompt_bad)])


def test_mistyped_relative_path_and_uncached_hub_name_fail_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for spec, message in [("data/gsm.jsonl", "data/gsm.jsonl: no such file"),
                          ("nobody-here/no-such-dataset", "no hub dataset 'nobody-here/no-such-dataset' in the local cache"),
                          ("hf:nobody-here/no-such-dataset:test", "no hub dataset 'nobody-here/no-such-dataset' in the local cache")]:
        start = time.perf_counter()
        with pytest.raises(DataError, match=message):
            load_preference_data([spec])
        assert time.perf_counter() - start < 2


def test_bad_data_cli_errors_exit_2_without_building_a_model(tmp_path, fresh_cache, capsys):
    (tmp_path / "adir").mkdir()
    surrogate = write_rows(tmp_path / "s.jsonl", [GOOD, '{"prompt": "p", "chosen": "\\ud800", "rejected": "r"}'])
    for data, message in [(tmp_path / "adir", "adir: is a directory"),
                          (surrogate, f"{surrogate}:2: field 'chosen': not valid Unicode"),
                          ("data/gsm.jsonl", "data/gsm.jsonl: no such file")]:
        code, _, err, seconds = cli(capsys, "train", "--method", "dpo", "--data", data, "--output", tmp_path / "o",
                                    "--no-progress")
        assert code == 2 and message in err, err
        assert "Traceback" not in err and seconds < 10
    assert no_model_built(fresh_cache)


# ---------------------------------------------------------------- item 7: a --model path that does not exist
@pytest.mark.parametrize("command", ["train", "eval", "train-and-eval"])
def test_model_path_that_does_not_exist(tmp_path, fresh_cache, capsys, command):
    missing = tmp_path / "runs" / "dpop" / "final"
    argv = {"train": ["train", "--method", "dpo", "--output", tmp_path / "o"],
            "eval": ["eval", "--output", tmp_path / "r"],
            "train-and-eval": ["train-and-eval", "--method", "dpo", "--runs-dir", tmp_path / "runs-te",
                               "--results", tmp_path / "r", "--leaderboards", tmp_path / "lb"]}[command]
    code, out, err, seconds = cli(capsys, *argv, "--model", missing)
    assert code == 2 and f"--model {missing}: no such directory" in err and "Repo id" not in out + err
    assert seconds < 10 and no_model_built(fresh_cache)


def test_model_hub_id_not_cached_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err, _ = cli(capsys, "eval", "--model", "nobody-here/no-such-model", "--output", tmp_path / "r")
    assert code == 2 and "no hub model of that name in the local cache" in err


# ------------------------------------------------------------ item 9: data is validated before any model
@pytest.mark.parametrize("method", ["dpo", "sdpo", "all"])
def test_bad_data_fails_before_the_tiny_model_is_built(tmp_path, fresh_cache, capsys, method):
    bad = write_rows(tmp_path / "bad.jsonl", [GOOD, {"prompt": "p", "chosen": "c"}])
    if method == "all":
        argv = ["train-and-eval", "--method", "all", "--data", bad, "--runs-dir", tmp_path / "runs",
                "--results", tmp_path / "r", "--leaderboards", tmp_path / "lb"]
    else:
        argv = ["train", "--method", method, "--data", bad, "--output", tmp_path / "o", "--no-progress"]
    code, _, err, seconds = cli(capsys, *argv)
    assert code == 2 and f"{bad}:2: field 'rejected': missing" in err
    assert seconds < 10 and no_model_built(fresh_cache)


def test_missing_data_directory_fails_before_the_tiny_model_is_built(tmp_path, fresh_cache, capsys, monkeypatch):
    """HARNESS_DATA_DIR pointing nowhere (the README's relative ../shared/data from another folder) is said at
    once, not after the tiny model is built and pre-trained."""
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "no-such-data"))
    code, _, err, seconds = cli(capsys, "train-and-eval", "--method", "dpop", "--runs-dir", tmp_path / "runs",
                                "--results", tmp_path / "r", "--leaderboards", tmp_path / "lb")
    assert code == 2 and f"data directory {tmp_path / 'no-such-data'} not found" in err
    assert seconds < 10 and no_model_built(fresh_cache)


# ------------------------------------------------------------------- item 10: nothing passes silently
@pytest.mark.parametrize("rejected", ["2 + 2 = 4. The answer is 4.  \n", " 2 + 2 =  4.\tThe answer is 4."])
def test_answers_differing_only_by_whitespace_are_identical(tmp_path, rejected):
    path = write_rows(tmp_path / "w.jsonl", [GOOD, {**GOOD, "rejected": rejected}])
    with pytest.raises(DataError, match=r"w.jsonl:2: field 'rejected': identical to 'chosen' apart from whitespace"):
        load_preference_data([str(path)])
    pairs, report = load_preference_data([str(path)], skip_invalid=True)
    assert len(pairs) == 1 and report.n_skipped == 1


def test_duplicates_counted_and_dropped_with_dedupe(tmp_path):
    other = {**GOOD, "prompt": "What is 3 + 3?"}
    path = write_rows(tmp_path / "d.jsonl", [GOOD, other, GOOD, GOOD, other, {**GOOD, "rejected": "5"}])
    pairs, report = load_preference_data([str(path)])
    assert (len(pairs), report.n_duplicates, report.n_deduped) == (6, 3, 0)
    assert report.duplicate_example == f"{path}:3 repeats {path}:1"
    pairs, report = load_preference_data([str(path)], dedupe=True)
    assert (len(pairs), report.n_duplicates, report.n_deduped) == (3, 3, 3)
    assert [p.origin for p in pairs] == [f"{path}:1", f"{path}:2", f"{path}:6"] and report.per_source == {"d": 3}


def test_truncation_and_duplicates_are_reported_and_recorded(tiny_model, tmp_path, capsys):
    from transformers import AutoTokenizer

    from align.encoding import encode_pairs
    from align.trainer import train

    rows = arithmetic_preference_pairs(16, seed=7)
    rows += rows[:3]  # three duplicates
    rows.append({"prompt": "Say it.", "chosen": "The answer is 4. " * 5000, "rejected": "The answer is 5."})  # ~85 kB
    path = write_jsonl(rows, tmp_path / "t.jsonl")
    out = tmp_path / "run"
    train(tcfg(tiny_model, str(path), out, max_steps=1))
    said = capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())

    # expected: tokens lost between an unbounded encoding and the max_length 96 one, counted independently
    tok = AutoTokenizer.from_pretrained(tiny_model)
    pairs, _ = load_preference_data([str(path)])
    full, _ = encode_pairs(tok, pairs, 10**7, 10**7)
    cut, _ = encode_pairs(tok, pairs, 96, 48)
    lost = [sum(map(len, (f.prompt_ids, f.chosen_ids, f.rejected_ids))) - sum(map(len, (c.prompt_ids, c.chosen_ids, c.rejected_ids)))
            for f, c in zip(full, cut)]
    assert sum(x > 0 for x in lost) == 1 and sum(lost) > 5000
    t = run["data"]["truncation"]
    assert t["pairs"] == 1 and t["prompt_tokens_dropped"] + t["answer_tokens_dropped"] == sum(lost)
    assert t["max_tokens_dropped_in_one_pair"] == max(lost)
    assert "1 pair(s) truncated to max_length 96" in said and f"{t['answer_tokens_dropped']} answer tokens" in said
    assert run["data"]["n_duplicates"] == 3 and run["data"]["n_deduped"] == 0 and run["data"]["n_pairs"] == 20
    assert "warning: 3 duplicate pairs" in said and "--dedupe drops them" in said

    run = train(tcfg(tiny_model, str(path), tmp_path / "dd", max_steps=1, dedupe=True))
    assert run["data"]["n_pairs"] == 17 and run["data"]["n_deduped"] == 3


def test_dedupe_flag_reaches_the_config():
    from harness.cmd_train import config_from_args

    args = build_parser().parse_args(["train", "--method", "dpo", "--output", "o", "--dedupe", "--resume",
                                      "--resume-ignore-config"])
    cfg = config_from_args(args, "dpo")
    assert cfg.dedupe and cfg.resume and cfg.resume_ignore_config
    assert not config_from_args(build_parser().parse_args(["train", "--method", "dpo", "--output", "o"]), "dpo").dedupe


# ------------------------------------------------- item 11: max_length beyond the model's positions
def test_max_length_beyond_the_models_positions_is_clamped(tiny_model, tmp_path, capsys):
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tiny_model).max_position_embeddings == 512
    rows = arithmetic_preference_pairs(8, seed=2)
    rows.append({"prompt": "Go on.", "chosen": "4 " * 1500, "rejected": "5"})  # > 512 tokens
    path = write_jsonl(rows, tmp_path / "long.jsonl")
    out = tmp_path / "run"
    # a tiny-model *path* picks the method's paper recipe: Zephyr, max_length 1024, max_prompt_length 512
    code, said, err, _ = cli(capsys, "train", "--method", "dpo", "--model", tiny_model, "--data", path, "--output", out,
                             "--max-steps", 1, "--no-progress")
    assert code == 0, err
    assert f"max_length 1024 exceeds the 512 positions of {tiny_model}: using max_length 512, max_prompt_length 256" in said
    run = json.loads((out / "run.json").read_text())
    assert run["lengths"] == {"max_length": 512, "max_prompt_length": 256, "model_max_positions": 512,
                              "requested_max_length": 1024, "requested_max_prompt_length": 512}
    assert run["data"]["truncation"]["pairs"] == 1

    from harness.evaluation.runner import describe_model

    assert describe_model(str(out))["hyperparameters"]["max_length"] == 512  # results carry the effective value


# ---------------------------------------------------------------------------- newcomer friction: help
def _help(*argv) -> str:
    parser = build_parser()
    sub = parser
    for name in argv:
        sub = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    return " ".join(sub.format_help().split())


def test_help_texts_say_what_each_option_does():
    tiny = _help("make-tiny-model")
    assert "--seed SEED Seed for the generated corpus, the initial weights and the pre-training batches" in tiny
    assert "about 10 s" not in tiny
    for builder, word in (("hh-rlhf", "HH-RLHF JSONL"), ("gsm8k-corrupt", "GSM8K JSONL")):
        text = _help("data", builder)
        assert word in text and "CSV" not in text and "mc-pairs" not in text
    assert "intermediate result is changed" in _help("data", "gsm8k-corrupt")
    assert "corruption" not in _help("data", "hh-rlhf") and "corruption" not in _help("data", "mc-pairs")


def test_builders_reject_answers_equal_apart_from_whitespace(tmp_path):
    """The builders apply the loader's rule, so what they write always loads back."""
    from align.builders import hh_rlhf, mc_pairs

    (tmp_path / "q.csv").write_text('What is it?,"a  b",a b,c,d,A\n')
    report = mc_pairs([str(tmp_path / "q.csv")], tmp_path / "mc.jsonl")
    assert report.n_pairs == 2 and report.rejects == {"wrong option identical to the correct one": 1}
    dialogue = "\n\nHuman: hi\n\nAssistant: "
    write_rows(tmp_path / "hh.jsonl", [{"chosen": dialogue + "fine,  thanks", "rejected": dialogue + "fine, thanks"},
                                       {"chosen": dialogue + "fine", "rejected": dialogue + "go away"}])
    report = hh_rlhf(tmp_path / "hh.jsonl", tmp_path / "hh-out.jsonl")
    assert report.n_pairs == 1 and report.rejects == {"chosen identical to rejected": 1}
