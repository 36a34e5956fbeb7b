"""Preference data loading: formats, the HH-RLHF split on real data, and malformed input."""
import gzip
import json

import pytest

from align.data import DataError, load_preference_data, split_hh_dialogue
from align.encoding import collate, encode_pairs


def write(tmp_path, name, text: str | bytes):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


GOOD = {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}


def jsonl(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


BAD_ROWS = [
    ("{not json", "bad JSON", None),
    ({"prompt": "p", "rejected": "r"}, "field 'chosen': missing", "chosen"),
    ({"prompt": "p", "chosen": "c"}, "field 'rejected': missing", "rejected"),
    ({"prompt": "   ", "chosen": "c", "rejected": "r"}, "field 'prompt': empty", "prompt"),
    ({"prompt": "p", "chosen": " \n", "rejected": "r"}, "field 'chosen': empty", "chosen"),
    ({"prompt": "p", "chosen": 7, "rejected": "r"}, "field 'chosen': expected a string", "chosen"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "field 'rejected': identical", "rejected"),
    ({"prompt": {"text": "p"}, "chosen": "c", "rejected": "r"}, "field 'prompt': expected a string or a list", "prompt"),
    ({"prompt": [{"content": "hi"}], "chosen": "c", "rejected": "r"}, "field 'prompt[0]'", "prompt"),
    (["a", "list"], "expected a JSON object", None),
    ({"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: ho"}, "field 'prompt': missing", "prompt"),
    ({"prompt": "p", "chosen": [{"role": "user", "content": "c"}], "rejected": "r"}, "last message must be the assistant", "chosen"),
    ({"chosen": [{"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "r"}]},
     "'chosen' holds only the answer", "prompt"),
]


@pytest.mark.parametrize("row,message,field", BAD_ROWS)
def test_malformed_row_names_file_line_and_field(tmp_path, row, message, field):
    path = write(tmp_path, "prefs.jsonl", jsonl(GOOD, GOOD, row))
    with pytest.raises(DataError) as e:
        load_preference_data([str(path)])
    assert f"{path}:3:" in str(e.value)
    assert message in str(e.value)


def test_non_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "latin.jsonl", jsonl(GOOD).encode() + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl:2: not valid UTF-8"):
        load_preference_data([str(path)])


def test_json_array_file_and_not_a_list(tmp_path):
    ok = write(tmp_path, "a.json", json.dumps([GOOD, GOOD]))
    pairs, _ = load_preference_data([str(ok)])
    assert len(pairs) == 2 and pairs[0].source == "a"
    bad = write(tmp_path, "b.json", json.dumps({"prompt": "x"}))
    with pytest.raises(DataError, match=r"b.json:1: expected a JSON list"):
        load_preference_data([str(bad)])


def test_parquet_and_named_sources(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([GOOD, {"prompt": "q", "chosen": "", "rejected": "r"}]), tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x.parquet:2: field 'chosen': empty"):
        load_preference_data([str(tmp_path / "x.parquet")])
    j = write(tmp_path, "y.jsonl", jsonl(GOOD))
    pairs, report = load_preference_data([f"math={j}", str(j)], skip_invalid=False)
    assert [p.source for p in pairs] == ["math", "y"]
    assert report.per_source == {"math": 1, "y": 1}


def test_skip_invalid_reports_how_many(tmp_path):
    path = write(tmp_path, "mixed.jsonl", jsonl(GOOD, "{oops", {"prompt": "p", "chosen": "c", "rejected": "c"}, GOOD))
    pairs, report = load_preference_data([str(path)], skip_invalid=True)
    assert len(pairs) == 2 and report.n_skipped == 2
    assert any("mixed.jsonl:2: bad JSON" in e for e in report.errors)


def test_missing_file_is_a_clear_error():
    with pytest.raises(DataError, match="no such file"):
        load_preference_data(["does/not/exist.jsonl"])


def test_conversational_forms(tmp_path):
    ultra = {"prompt": "Name a colour.",
             "chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
             "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Seven."}]}
    trl_style = {"prompt": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
                 "chosen": [{"role": "assistant", "content": "Hello."}], "rejected": [{"role": "assistant", "content": "Go away."}]}
    no_prompt = {k: v for k, v in ultra.items() if k != "prompt"}
    pairs, _ = load_preference_data([str(write(tmp_path, "c.jsonl", jsonl(ultra, trl_style, no_prompt)))])
    assert pairs[0].prompt == [{"role": "user", "content": "Name a colour."}] and pairs[0].chosen == "Blue."
    assert pairs[1].prompt[0]["role"] == "system" and pairs[1].rejected == "Go away."
    assert pairs[2].prompt == pairs[0].prompt and pairs[2].rejected == "Seven."


def test_hh_split_synthetic():
    c = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross?"
    r = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant: No."
    msgs, chosen, rejected = split_hh_dialogue(c, r)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[-1]["content"] == "Tell me a joke"
    assert chosen == "Why did the chicken cross?" and rejected == "No."


def test_hh_rlhf_real_file(data_dir):
    path = data_dir / "hh_rlhf" / "harmless-base" / "test.jsonl.gz"
    with pytest.raises(DataError, match=r"test.jsonl.gz:87: field 'chosen': empty"):
        load_preference_data([str(path)])  # a real row whose chosen answer is empty
    pairs, report = load_preference_data([str(path)], skip_invalid=True)
    assert report.n_loaded + report.n_skipped == 2312 and report.n_skipped == 4
    with gzip.open(path, "rt") as fh:
        first = json.loads(fh.readline())
    p = pairs[0]
    assert first["chosen"].endswith(p.chosen) and first["rejected"].endswith(p.rejected)
    assert p.prompt[-1]["role"] == "user" and all(m["content"] for m in p.prompt)
    assert sum(m["role"] == "user" for m in p.prompt) == first["chosen"].count("\n\nHuman: ")
    # every prompt ends with the human's turn (real rows may hold two assistant turns in a row)
    assert all(q.prompt[-1]["role"] == "user" for q in pairs)


def test_encoding_masks_prompt_and_truncates(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    long_prompt = " ".join(["What is 12 + 7?"] * 5)
    rows = [GOOD, {"prompt": long_prompt, "chosen": "12 + 7 = 19. The answer is 19.", "rejected": "12 + 7 = 20."}]
    pairs, _ = load_preference_data([str(write(tmp_path, "t.jsonl", jsonl(*rows)))])
    enc, _ = encode_pairs(tok, pairs, max_length=48, max_prompt_length=24)
    assert enc[0].chosen_ids[-1] == tok.convert_tokens_to_ids("<|end|>") or enc[0].chosen_ids[-2] == tok.convert_tokens_to_ids("<|end|>")
    assert len(enc[1].prompt_ids) == 24  # kept the last 24 prompt tokens
    assert len(enc[1].prompt_ids) + len(enc[1].chosen_ids) <= 48
    batch = collate(enc, tok.pad_token_id)
    assert batch["input_ids"].shape[0] == 4  # chosen rows then rejected rows
    n_prompt = len(enc[0].prompt_ids)
    assert (batch["labels"][0, :n_prompt] == -100).all() and (batch["labels"][0, n_prompt] != -100)
    with pytest.raises(DataError, match=r"t.jsonl:2: field 'prompt': \d+ tokens, longer than max_length=32"):
        encode_pairs(tok, pairs, max_length=32, max_prompt_length=16)
    kept, skipped = encode_pairs(tok, pairs, max_length=32, max_prompt_length=16, skip_invalid=True)
    assert len(kept) == 1 and len(skipped) == 1
