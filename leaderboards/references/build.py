"""Write the published reference rows in this folder from the papers' transcribed tables.

    python leaderboards/references/build.py            # (re)write the *_paper.yaml files
    python leaderboards/references/build.py --check    # exit 1 if a committed file differs

Input: tables.yaml beside the papers (--papers DIR, else $HARNESS_PAPERS_DIR, else the
``papers`` folder beside $HARNESS_DATA_DIR, else ../shared/papers next to the repository).
Each row keeps where its numbers come from (paper, table id, line of the paper's text file)
and the map from our column names to the paper's, so tests/test_references.py can check
every committed number against tables.yaml and the paper's text line.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

PAPERS = {  # short citation per tables.yaml paper key
    "dgpo": "DGPO paper (anonymous ICLR submission)",
    "smaug_dpop": "Smaug paper (Pal et al. 2024, arXiv:2402.13228)",
    "sdpo": "sDPO paper (Kim et al. 2024, arXiv:2403.19270)",
}

# Our leaderboard headers (leaderboards/specs/*.yaml) -> the column as printed in each paper.
DGPO_OPENLLM = {"Avg": "Average", "ARC": "ARC", "HellaSwag": "HellaSwag", "MMLU": "MMLU",
                "TruthfulQA": "TruthfulQA", "Winogrande": "WinoGrande", "GSM8K": "GSM-8K"}
DGPO_MTBENCH = {"MT-Bench T1": "1st Turn", "MT-Bench T2": "2nd Turn", "MT-Bench Avg": "Average"}
SMAUG_OPENLLM = {"Avg": "Avg.", "ARC": "ARC", "HellaSwag": "HellaSwag", "MMLU": "MMLU", "TruthfulQA": "TruthfulQA",
                 "Winogrande": "Winogrande", "GSM8K": "GSM8K"}
# sDPO prints H4 = the mean of 4 tasks (ARC, HellaSwag, MMLU, TruthfulQA), not the 6-task Avg: it is kept
# under `printed` (no leaderboard column), and Avg stays empty because Winogrande and GSM8K were not reported.
SDPO_OPENLLM = {"ARC": "ARC", "HellaSwag": "HellaSwag", "MMLU": "MMLU", "TruthfulQA": "TruthfulQA"}
SDPO_PRINTED = {"H4": "H4 (Avg.)"}

# The DGPO paper's method names -> this project's loss names.
DGPO_METHODS = {"SFT": "sft", "DPO": "dpo", "IPO": "ipo", "CPO": "cpo", "KTO": "kto", "RRHF": "rrhf",
                "SLiC-HF": "slic", "ORPO": "orpo", "SimPO": "simpo", "DGPO": "dgpo"}
DGPO_BASES = {"dgpo-table-4": "Mistral 7B Instruct v0.2", "dgpo-fig-4-table": "Mistral 7B Instruct v0.2",
              "dgpo-table-8": "Llama3 8B Instruct", "dgpo-table-7": "Llama3 8B Instruct"}
DGPO_TABLE_NAMES = {"dgpo-table-4": "Table 4", "dgpo-table-8": "Table 8", "dgpo-fig-4-table": "Fig. 4 (table in the figure)",
                    "dgpo-table-7": "Table 7"}
SDPO_METHOD_ROWS = {"SOLAR 10.7B + SFT": "base", "SOLAR 10.7B + SFT + DPO": "dpo", "SOLAR 10.7B + SFT + sDPO": "sdpo",
                    "SOLAR 10.7B + SFT + sDPO Rand.": "sdpo"}

SFT_ROW = ("the paper's 'SFT' row: §4.1 calls the official instruct model its initial SFT model and states no SFT "
           "training, so presumably that model as released (not stated)")


def _dgpo_rows(tables, table_id, columns, extra):
    rows = []
    for r in tables[table_id]["rows"]:
        method = DGPO_METHODS[r["Method"]]
        cite = (f"{PAPERS['dgpo']}, {DGPO_TABLE_NAMES[table_id]} (tables.yaml {table_id}), line {r['_source_line']}; "
                f"{DGPO_BASES[table_id]} + UltraFeedback; {extra}" + (f"; {SFT_ROW}" if method == "sft" else ""))
        rows.append({"label": f"{r['Method']} ({DGPO_BASES[table_id]}, DGPO paper)", "method": method,
                     "group": f"DGPO paper, {DGPO_TABLE_NAMES[table_id]}: {DGPO_BASES[table_id]} + UltraFeedback",
                     "base_model": DGPO_BASES[table_id], "values": {k: r[c] for k, c in columns.items()},
                     "published": True, "citation": cite,
                     "sources": [{"paper": "dgpo", "table": table_id, "line": r["_source_line"]}]})
    return rows


def _merge(rows):
    """One row per (label, values): a model printed in two tables is cited to both."""
    out: dict = {}
    for r in rows:
        key = (r["label"], tuple(sorted(r["values"].items())))
        if key in out:
            out[key]["sources"] += r["sources"]
            out[key]["_where"] += r["_where"]
        else:
            out[key] = r
    for r in out.values():
        r["citation"] = r["citation"].format(where=" and ".join(r.pop("_where")))
    return list(out.values())


def _table_rows(tables, paper, table_id, name, columns, *, printed=None, keep=lambda r: True, note=""):
    rows = []
    for r in tables[table_id]["rows"]:
        if not keep(r):
            continue
        label = r["Model"].replace(" (Ours)", " (DPOP)")  # the Smaug paper marks its own DPOP models "(Ours)"
        row = {"label": label, "values": {k: r[c] for k, c in columns.items() if r.get(c) is not None}}
        if printed:
            row["printed"] = {k: r[c] for k, c in printed.items()}
        extra = "".join(f"; {k} {v:.2f} as printed" for k, v in (row.get("printed") or {}).items())
        # {where} is filled in by _merge, which may cite a second table
        row.update({"published": True, "citation": f"{PAPERS[paper]}, {{where}}{extra}{note}",
                    "sources": [{"paper": paper, "table": table_id, "line": r["_source_line"]}],
                    "_where": [f"{name} (tables.yaml {table_id}), line {r['_source_line']}"]})
        rows.append(row)
    return rows


def build(tables_yaml: Path) -> dict[str, dict]:
    doc = yaml.safe_load(tables_yaml.read_text())
    tables = {t["id"]: t for p in doc["papers"].values() for t in p["tables"]}
    files = {p: doc["papers"][p]["file"] for p in PAPERS}
    h4 = ("; H4 is the paper's mean of ARC, HellaSwag, MMLU and TruthfulQA, not the six-task Avg, which stays "
          "empty (no Winogrande or GSM8K reported)")
    out = {}
    def dgpo_file(about, boards, table_ids, columns, how):
        return {"about": about, "tables": boards, "columns": {t: columns for t in table_ids},
                "rows": [row for t in table_ids for row in _dgpo_rows(tables, t, columns, how)]}

    out["dgpo_openllm_paper.yaml"] = dgpo_file(
        "DGPO paper, Open LLM Leaderboard tasks per method (Tables 4 and 8). Scored with lm-evaluation-harness; "
        "the paper states neither shots nor metrics. Avg is the paper's printed Average. One decimal as printed.",
        ["openllm_v1", "method_comparison"], ("dgpo-table-4", "dgpo-table-8"), DGPO_OPENLLM,
        "lm-evaluation-harness, shots not stated")
    out["dgpo_mtbench_paper.yaml"] = dgpo_file(
        "DGPO paper, MT-Bench per method (the table inside Fig. 4 and Table 7): FastChat with GPT-4-1106-preview "
        "as judge (§4.3), not FastChat's default GPT-4 judge.",
        ["judged"], ("dgpo-fig-4-table", "dgpo-table-7"), DGPO_MTBENCH, "FastChat, judge GPT-4-1106-preview (§4.3)")
    out["smaug_openllm_paper.yaml"] = {
        "about": "Smaug paper, Open LLM Leaderboard v1 (six tasks) as of 2024-02-01: Table 1 (top five), Table 3 (top 20) "
                 "and Table 4 (under 35B). A model printed in two tables is one row citing both.",
        "tables": ["openllm_v1"],
        "columns": {t: SMAUG_OPENLLM for t in ("smaug-table-1", "smaug-table-3", "smaug-table-4")},
        "rows": _merge(_table_rows(tables, "smaug_dpop", "smaug-table-1", "Table 1", SMAUG_OPENLLM)
                       + _table_rows(tables, "smaug_dpop", "smaug-table-3", "Table 3", SMAUG_OPENLLM)
                       + _table_rows(tables, "smaug_dpop", "smaug-table-4", "Table 4", SMAUG_OPENLLM)),
    }
    method_row = lambda r: r["Model"] in SDPO_METHOD_ROWS  # noqa: E731
    sdpo_methods = _merge(_table_rows(tables, "sdpo", "sdpo-table-2", "Table 2", SDPO_OPENLLM, printed=SDPO_PRINTED,
                                      keep=method_row, note=h4)
                          + _table_rows(tables, "sdpo", "sdpo-table-3", "Table 3", SDPO_OPENLLM, printed=SDPO_PRINTED,
                                        note=h4))
    for r in sdpo_methods:
        r["method"] = SDPO_METHOD_ROWS[r["label"]]
        r["base_model"] = "SOLAR 10.7B + SFT"
        r["group"] = "sDPO paper, Tables 2 and 3: SOLAR 10.7B + SFT, OpenOrca then Ultrafeedback Cleaned (4 tasks)"
    out["sdpo_methods_paper.yaml"] = {
        "about": "sDPO paper, its own runs on SOLAR 10.7B + SFT (Tables 2 and 3): four Open LLM v1 tasks and H4 "
                 "(their mean). H4 is not the six-task Avg: kept under `printed`, Avg left empty.",
        "tables": ["openllm_v1", "method_comparison"],
        "columns": {"sdpo-table-2": SDPO_OPENLLM, "sdpo-table-3": SDPO_OPENLLM},
        "printed_columns": {"sdpo-table-2": SDPO_PRINTED, "sdpo-table-3": SDPO_PRINTED},
        "rows": sdpo_methods,
    }
    out["sdpo_other_models_paper.yaml"] = {
        "about": "sDPO paper, Table 2: the other models it lists beside its own runs (four Open LLM v1 tasks and H4). "
                 "H4 is not the six-task Avg: kept under `printed`, Avg left empty.",
        "tables": ["openllm_v1"],
        "columns": {"sdpo-table-2": SDPO_OPENLLM},
        "printed_columns": {"sdpo-table-2": SDPO_PRINTED},
        "rows": _merge(_table_rows(tables, "sdpo", "sdpo-table-2", "Table 2", SDPO_OPENLLM, printed=SDPO_PRINTED,
                                   keep=lambda r: not method_row(r), note=h4)),
    }
    for doc_out in out.values():
        doc_out["papers"] = {p: files[p] for p in sorted({s["paper"] for r in doc_out["rows"] for s in r["sources"]})}
    return out


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):  # repeat a shared column map instead of writing &id001 anchors
        return True


ROW_KEYS = ["label", "method", "base_model", "group", "values", "printed", "published", "citation", "sources"]


def render(doc: dict) -> str:
    head = ("# Generated by leaderboards/references/build.py from tables.yaml (the papers' transcribed tables);\n"
            "# do not edit by hand. Published numbers, not measured here.\n")
    order = ["about", "tables", "papers", "columns", "printed_columns", "rows"]
    doc = {k: doc[k] for k in order if k in doc}
    doc["rows"] = [{k: r[k] for k in ROW_KEYS if k in r} for r in doc["rows"]]
    body = yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, default_flow_style=None, width=130)
    return head + body


def papers_dir() -> Path:
    if os.environ.get("HARNESS_PAPERS_DIR"):
        return Path(os.environ["HARNESS_PAPERS_DIR"])
    if os.environ.get("HARNESS_DATA_DIR"):
        return Path(os.environ["HARNESS_DATA_DIR"]).parent / "papers"
    return HERE.parents[2] / "shared" / "papers"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=Path, default=None, help="folder holding tables.yaml")
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    src = (args.papers or papers_dir()) / "tables.yaml"
    if not src.is_file():
        print(f"error: {src} not found (give --papers DIR)", file=sys.stderr)
        return 2
    stale = []
    for name, doc in build(src).items():
        path, text = args.out / name, render(doc)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        tmp = path.with_name(f".{name}.tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    if stale:
        print("out of date (run leaderboards/references/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
