"""`harness leaderboard`: regenerate every table in leaderboards/ from results/."""
from __future__ import annotations

from pathlib import Path

from harness.leaderboard.collect import collect
from harness.leaderboard.render import write_table
from harness.leaderboard.tables import build_tables, load_references, load_spec

REPO_LEADERBOARDS = Path(__file__).resolve().parents[2] / "leaderboards"


class InvalidResults(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("invalid or duplicate result files:\n  " + "\n  ".join(problems))
        self.problems = problems


def default_dir(sub: str) -> Path:
    local = Path("leaderboards") / sub
    return local if local.is_dir() else REPO_LEADERBOARDS / sub


def regenerate(results_dir, out_dir, specs_dir=None, refs_dir=None, *, skip_invalid=False, plot=True) -> dict:
    """Returns {"written": [paths], "problems": [...], "tables": [Table], "removed": [paths]};
    raises InvalidResults unless skip_invalid. A comparison spec's folder keeps only the tables written now:
    a table of runs that were replaced by newer ones is removed."""
    found = collect(results_dir)
    if found.problems and not skip_invalid:
        raise InvalidResults(found.problems)
    specs_dir = Path(specs_dir) if specs_dir else default_dir("specs")
    refs_dir = Path(refs_dir) if refs_dir else default_dir("references")
    written, tables, removed = [], [], []
    for spec_path in sorted(specs_dir.glob("*.yaml")):
        spec = load_spec(spec_path)
        refs = load_references(refs_dir, spec["name"]) if refs_dir.is_dir() else []
        mine = []
        for table in build_tables(spec, found.records, refs, found.items, found.superseded):
            mine += write_table(table, Path(out_dir), plot=plot)
            tables.append(table)
        if spec["kind"] == "method_comparison":
            folder = Path(out_dir) / spec["name"]
            for stale in sorted(p for p in folder.glob("*") if p.is_file() and p.suffix in TABLE_SUFFIXES
                                and p not in mine):
                stale.unlink()
                removed.append(stale)
        written += mine
    return {"written": written, "problems": found.problems, "tables": tables, "removed": removed}


TABLE_SUFFIXES = (".md", ".csv", ".tex", ".png")
