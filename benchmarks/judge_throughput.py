"""Judge throughput: all 160 MT-Bench turns judged against the loopback OpenAI-compatible server with
100 ms latency per request (the server runs in a child process, as a remote judge would not share our GIL), sequentially (concurrency 1) and with concurrency 32, in one process; then a
rerun that must be answered entirely from the cache. Prints JSON.

    HARNESS_DATA_DIR=../shared/data python benchmarks/judge_throughput.py [--latency 0.1] [--concurrency 32]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.judge import JudgeConfig  # noqa: E402
from harness.judged import mtbench  # noqa: E402
from harness.testing.scripted import ScriptedGenerator  # noqa: E402


class RemoteFake:
    """The fake server in a child process; request counts come from its /stats endpoint."""

    def __init__(self, latency_s: float):
        import multiprocessing as mp

        from harness.testing.fake_openai import serve_forever

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_forever, args=(latency_s, child), daemon=True)
        self.proc.start()
        self.base_url = parent.recv()

    @property
    def n_requests(self) -> int:
        import urllib.request

        with urllib.request.urlopen(self.base_url + "/stats") as r:
            return json.load(r)["n_requests"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.join()


def judge_all(fake, answers, data_dir, out, concurrency) -> dict:
    cfg = JudgeConfig(model="judge", base_url=fake.base_url, concurrency=concurrency, progress=False)
    n0 = fake.n_requests
    t = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        rec = mtbench.run(None, cfg, out, data_dir=data_dir, answers_path=answers)
    seconds = time.perf_counter() - t
    j = rec.judge
    return {"concurrency": concurrency, "seconds": round(seconds, 3), "judge_seconds": round(j["judge_seconds"], 3),
            "http_requests": fake.n_requests - n0,
            "calls": j["calls"], "cache_hits": j["cache_hits"], "tokens": j["total_tokens"],
            "judgments_per_s": round(160 / seconds, 1), "score_avg": rec.scores[2]["value"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    data_dir = Path(os.environ.get("HARNESS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    os.environ.setdefault("OPENAI_API_KEY", "sk-loopback-benchmark")
    with tempfile.TemporaryDirectory() as tmp, RemoteFake(args.latency) as fake:
        tmp = Path(tmp)
        answers = tmp / "answers.jsonl"
        with contextlib.redirect_stderr(io.StringIO()):
            mtbench.generate_answers(ScriptedGenerator(), mtbench.load_questions(data_dir), answers, "bench-model")
        seq = judge_all(fake, answers, data_dir, tmp / "sequential", 1)
        conc = judge_all(fake, answers, data_dir, tmp / "concurrent", args.concurrency)
        (tmp / "concurrent/mt_bench/model_judgment/judge_single.jsonl").unlink()  # force re-judging: cache only
        rerun = judge_all(fake, answers, data_dir, tmp / "concurrent", args.concurrency)
    print(json.dumps({"benchmark": "judge_throughput", "turns": 160, "latency_s": args.latency,
                      "sequential": seq, "concurrent": conc, "cached_rerun": rerun,
                      # judging phase: the 160 calls, their parsing and fsynced writes
                      "speedup": round(seq["judge_seconds"] / conc["judge_seconds"], 1), "target_speedup": 20,
                      "meets_target": seq["judge_seconds"] / conc["judge_seconds"] >= 20,
                      # whole benchmark run: also loading files, the summary and the radar PNG (fixed costs)
                      "speedup_whole_run": round(seq["seconds"] / conc["seconds"], 1),
                      "rerun_http_requests": rerun["http_requests"], "same_scores": seq["score_avg"] == conc["score_avg"] == rerun["score_avg"]},
                     indent=2))


if __name__ == "__main__":
    main()
