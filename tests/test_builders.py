"""Dataset builders on the real raw files: GSM8K corruption, multiple-choice pairs, HH-RLHF."""
from __future__ import annotations

import gzip
import json
import random

import pytest

from align.builders import (arithmetic_short, corrupt_solution, gsm8k_corrupt, hh_rlhf, levenshtein, mc_pairs,
                            normalised_edit_distance)
from align.data import DataError, load_preference_data, split_hh_dialogue, write_jsonl


def _plain_levenshtein(a, b):
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_levenshtein_hand_values_and_prefix_stripping_is_exact():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3 and levenshtein("same", "same") == 0
    assert normalised_edit_distance("x = 24.", "x = 22.") == pytest.approx(1 / 7)
    rng = random.Random(0)
    for _ in range(200):
        a = "".join(rng.choice("ab") for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice("ab") for _ in range(rng.randint(0, 9)))
        assert levenshtein(a, b) == _plain_levenshtein(a, b)


SOLUTION = "She buys 3*4 = <<3*4=12>>12 pens.\nThen 12+5 = <<12+5=17>>17 items.\nSo 17*2 = <<17*2=34>>34.\n#### 34"


def test_corruption_changes_one_intermediate_result_twice_and_keeps_the_answer():
    seen = set()
    for seed in range(30):
        rejected, change = corrupt_solution(SOLUTION, random.Random(seed))
        assert change["step"] in (1, 2) and change["n_steps"] == 3  # never the last calculation
        orig, new = change["original"], change["corrupted"]
        assert orig in ("12", "17") and new != orig and abs(int(new) - int(orig)) <= 3
        # Exactly the annotation result and the text right after it changed.
        assert rejected == SOLUTION.replace(f"={orig}>>{orig}", f"={new}>>{new}", 1)
        assert rejected.endswith("#### 34")
        seen.add(change["step"])
    assert seen == {1, 2}
    assert corrupt_solution("Total 2+2 = <<2+2=4>>4.\n#### 4", random.Random(0)) == "no intermediate calculation to corrupt"
    rejected, change = corrupt_solution("a <<1/5=0.2>>0.2 b <<0.2*5=1>>1\n#### 1", random.Random(1))
    assert change["original"] == "0.2" and len(change["corrupted"]) == 3 and "." in change["corrupted"]


def test_gsm8k_corrupt_on_real_train_file(data_dir, tmp_path):
    src = tmp_path / "train.jsonl"
    lines = (data_dir / "gsm8k" / "train.jsonl").read_text().splitlines(keepends=True)[:60]
    src.write_text("".join(lines))
    rep = gsm8k_corrupt(src, tmp_path / "out.jsonl", seed=3)
    assert rep.n_read == 60 and rep.n_pairs + sum(rep.rejects.values()) == 60 and rep.n_pairs > 40
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    originals = {f"train.jsonl:{i}": json.loads(x) for i, x in enumerate(lines, start=1)}
    for r in rows:
        o = originals[r["id"]]
        assert r["prompt"] == o["question"] and r["chosen"] == o["answer"]
        assert r["rejected"].split("####")[1] == o["answer"].split("####")[1]
        assert levenshtein(r["chosen"], r["rejected"]) <= 2 * max(len(r["corrupted_original"]), len(r["corrupted_corrupted"]))
    pairs, _ = load_preference_data([str(tmp_path / "out.jsonl")])
    assert len(pairs) == rep.n_pairs
    assert 0 < rep.mean_edit_distance < 0.05  # low edit distance by construction
    assert json.loads((tmp_path / "out.report.json").read_text())["n_pairs"] == rep.n_pairs
    # Deterministic per seed; another seed corrupts differently.
    gsm8k_corrupt(src, tmp_path / "again.jsonl", seed=3)
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "out.jsonl").read_bytes()
    gsm8k_corrupt(src, tmp_path / "other.jsonl", seed=4)
    assert (tmp_path / "other.jsonl").read_bytes() != (tmp_path / "out.jsonl").read_bytes()
    limited = gsm8k_corrupt(src, tmp_path / "lim.jsonl", seed=3, limit=10)
    assert limited.n_pairs == 10 and limited.rejects["not sampled (limit)"] == rep.n_pairs - 10


def test_gsm8k_corrupt_bad_row_names_file_line_field(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"question": "q", "answer": SOLUTION}) + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'answer'"):
        gsm8k_corrupt(src, tmp_path / "o.jsonl")


def test_mc_pairs_on_real_mmlu_file(data_dir, tmp_path):
    csv_path = data_dir / "mmlu" / "dev" / "anatomy_dev.csv"
    rep = mc_pairs([csv_path], tmp_path / "mc.jsonl")
    assert rep.n_read == 5 and rep.n_pairs == 15 and rep.rejects == {}
    rows = [json.loads(x) for x in (tmp_path / "mc.jsonl").read_text().splitlines()]
    import csv

    first = next(csv.reader(open(csv_path, newline="", encoding="utf-8")))
    correct = first[1 + "ABCD".index(first[5])]
    mine = [r for r in rows if r["id"].startswith("anatomy_dev.csv:1:")]
    assert {r["chosen"] for r in mine} == {correct} and len(mine) == 3
    assert {r["rejected"] for r in mine} == {o for o in first[1:5] if o != correct}
    assert all(r["subject"] == "anatomy" and r["prompt"] == first[0] for r in mine)
    assert rep.mean_edit_distance > 0.3  # whole different answers
    bad = tmp_path / "bad.csv"
    bad.write_text("q1,a,b,c,d,A\nq2,a,b,c,d,E\n")
    with pytest.raises(DataError, match=r"bad.csv:2: field 'answer'"):
        mc_pairs([bad], tmp_path / "x.jsonl")


def test_hh_rlhf_on_real_harmless_file(data_dir, tmp_path):
    raw = gzip.open(data_dir / "hh_rlhf" / "harmless-base" / "test.jsonl.gz", "rt", encoding="utf-8").read().splitlines()[:25]
    src = tmp_path / "hh.jsonl"
    src.write_text("\n".join(raw) + "\n")
    rep = hh_rlhf(src, tmp_path / "pairs.jsonl")
    assert rep.n_read == 25 and rep.n_pairs + sum(rep.rejects.values()) == 25
    first = json.loads(raw[0])
    prompt, chosen, rejected = split_hh_dialogue(first["chosen"], first["rejected"])
    pairs, _ = load_preference_data([str(tmp_path / "pairs.jsonl")])
    assert pairs[0].prompt == prompt and pairs[0].chosen == chosen and pairs[0].rejected == rejected


def test_cli_data_builds_and_fails_cleanly(data_dir, tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setenv("HARNESS_DATA_DIR", str(data_dir))
    assert main(["data", "hh-rlhf", "--output", str(tmp_path / "hh.jsonl"), "--limit", "7", "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["n_pairs"] == 7
    assert len(load_preference_data([str(tmp_path / "hh.jsonl")])[0]) == 7
    monkeypatch.delenv("HARNESS_DATA_DIR")
    assert main(["data", "gsm8k-corrupt", "--output", str(tmp_path / "g.jsonl")]) == 2
    assert "HARNESS_DATA_DIR" in capsys.readouterr().out


def test_jsonl_with_unicode_line_separator_loads(tmp_path):
    # Real datasets contain U+2028 inside strings; a JSONL line must not be split there.
    path = write_jsonl([{"prompt": "a\u2028b", "chosen": "x", "rejected": "y"}], tmp_path / "u.jsonl")
    pairs, _ = load_preference_data([str(path)])
    assert pairs[0].prompt[0]["content"] == "a\u2028b"


def test_arithmetic_short_pairs_change_only_the_final_answer(tmp_path):
    import re

    rep = arithmetic_short(tmp_path / "a.jsonl", n=150, seed=5)
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert rep.n_pairs == len(rows) == 150 and {r["operation"] for r in rows} == {"addition", "subtraction", "multiplication"}
    for r in rows:
        a, op, b, c, c2 = re.fullmatch(r"(\d+) ([-+*]) (\d+) = (\d+)\. The answer is (\d+)\.", r["chosen"]).groups()
        assert r["prompt"] == f"What is {a} {op} {b}?" and c == c2
        assert int(c) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        head, wrong = r["rejected"][:-1].rsplit(" ", 1)
        assert r["rejected"].startswith(f"{a} {op} {b} = {c}. The answer is ") and head + " " == r["chosen"][: len(head) + 1]
        assert 1 <= abs(int(wrong) - int(c)) <= 3 and int(wrong) >= 0
    # "5 + 7 = 12. The answer is 12." against "... is 13.": one character of 29.
    assert normalised_edit_distance("5 + 7 = 12. The answer is 12.", "5 + 7 = 12. The answer is 13.") == pytest.approx(1 / 29)
    expected = sum(normalised_edit_distance(r["chosen"], r["rejected"]) for r in rows) / len(rows)
    assert rep.mean_edit_distance == pytest.approx(expected) and rep.mean_edit_distance < 0.1
    pairs, _ = load_preference_data([str(tmp_path / "a.jsonl")])
    assert [p.chosen for p in pairs] == [r["chosen"] for r in rows]
    # Deterministic per seed, different across seeds.
    arithmetic_short(tmp_path / "b.jsonl", n=150, seed=5)
    arithmetic_short(tmp_path / "c.jsonl", n=150, seed=6)
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a.jsonl").read_text() != (tmp_path / "c.jsonl").read_text()
