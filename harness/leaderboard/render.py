"""Write a Table as Markdown, CSV, LaTeX and a PNG bar chart; byte-identical for the same input."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from align.atomic import write_atomic
from harness.leaderboard.tables import Table

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--"}


def markdown(t: Table) -> str:
    esc = lambda s: s.replace("|", r"\|")  # noqa: E731
    lines = [f"# {t.title}", "", "| " + " | ".join(map(esc, t.headers)) + " |",
             "|" + "|".join("---" for _ in t.headers) + "|"]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in t.rows]
    for heading, rows in t.blocks:  # published rows: a table of their own under a heading
        lines += ["", f"## {heading}", "", "| " + " | ".join(map(esc, t.headers)) + " |",
                  "|" + "|".join("---" for _ in t.headers) + "|"]
        lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    if t.notes:
        lines += [""] + [f"- {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    # Measured rows only: the published blocks are data already (leaderboards/references/*.yaml).
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(t.headers)
    w.writerows(t.rows)
    return buf.getvalue()


def latex(t: Table) -> str:
    tex = lambda s: "".join(_TEX.get(ch, ch) for ch in s)  # noqa: E731
    n_label = sum(1 for c in t.rows[0] if not _numeric(c)) if t.rows else 1
    spec = "l" * n_label + "r" * (len(t.headers) - n_label)
    lines = [f"% {tex(t.title)}", r"\begin{tabular}{" + spec + "}", r"\toprule",
             " & ".join(map(tex, t.headers)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(tex, r)) + r" \\" for r in t.rows]
    for heading, rows in t.blocks:
        lines += [r"\midrule", r"\multicolumn{" + str(len(t.headers)) + r"}{l}{\textit{" + tex(heading) + r"}} \\", r"\midrule"]
        lines += [" & ".join(map(tex, r)) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {tex(n)}" for n in t.notes]
    return "\n".join(lines) + "\n"


def _numeric(cell: str) -> bool:
    try:
        float(cell.split(" ")[0])  # "52.30 (-2.10/+1.90)": a value with its interval
        return True
    except ValueError:
        return cell == "–"


NOT_COMPARABLE = "not comparable to published rows"


MAX_PLOTTED_PUBLISHED = 3  # a chart of dozens of paper rows is unreadable; the table keeps them all


def _plotted_rows(t: Table) -> tuple[list[str], list[list], int]:
    """Measured rows, then the first few published rows, complete ones first (a published row with some values
    when none is complete: a paper that reports only MT-Bench still shows); how many rows were left out."""
    published = set(t.published)
    measured = [(lab, v) for lab, v in zip(t.labels, t.values) if lab not in published]
    refs = [(lab, v) for lab, v in zip(t.labels, t.values) if lab in published and any(x is not None for x in v)]
    refs.sort(key=lambda row: None in row[1])  # stable: complete rows first, each group in table order
    kept = refs[:MAX_PLOTTED_PUBLISHED] if measured else refs[: 2 * MAX_PLOTTED_PUBLISHED]
    rows = measured + kept
    return [lab for lab, _ in rows], [v for _, v in rows], len(t.labels) - len(rows)


def bar_figure(t: Table):
    """The chart as a matplotlib figure: full (wrapped) title, a y-axis label, missing values marked as such,
    and measured rows that are not comparable to published rows beside them hatched and labelled."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_num = len(t.values[0]) if t.values else 0
    headers = t.headers[len(t.headers) - n_num :]
    labels, values, left_out = _plotted_rows(t)
    title = textwrap.wrap(t.title, 80, break_on_hyphens=False)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(headers) + 2), 4 + 0.2 * len(title)), dpi=100)
    width = 0.8 / max(1, len(values))
    found = [v for vals in values for v in vals if v is not None]
    top = max([0.0, *found])
    bottom = min([0.0, *found])
    marker_y = bottom + 0.02 * ((top - bottom) or 1.0)
    flagged = set(t.not_comparable) if t.published else set()
    colors = plt.get_cmap("tab20" if len(values) > 10 else "tab10").colors  # no two rows share a colour
    for i, (label, vals) in enumerate(zip(labels, values)):
        xs = [j + i * width for j in range(len(headers))]
        shown = f"{label} ({NOT_COMPARABLE})" if label in flagged else label
        ax.bar(xs, [v if v is not None else 0 for v in vals], width, label=shown, color=colors[i % len(colors)],
               hatch="//" if label in flagged else None)
        for x, v in zip(xs, vals):
            # A missing value and a real 0 both draw no bar: label each, so that neither reads as the other.
            if v is None or v == 0:
                ax.text(x, marker_y, "n/a" if v is None else "0", ha="center", va="bottom",
                        rotation=90 if v is None else 0, fontsize=7, color="0.3")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(headers))],
                  ["\n".join(textwrap.wrap(h, 12, break_long_words=False)) for h in headers], fontsize=8)
    ax.set_ylabel("\n".join(textwrap.wrap(t.y_label, 40)), fontsize=8)
    ax.set_title("\n".join(title), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    notes = ["n/a: no value (see the table's notes); 0: a measured 0"] if any(v is None for vals in values for v in vals) else []
    if left_out:
        notes.append(f"{left_out} more published rows in the table")
    if flagged:
        notes.append(f"hatched: measured smoke runs, {NOT_COMPARABLE}")
    if notes:
        fig.text(0.01, 0.01, "; ".join(notes), fontsize=7, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.05 if notes else 0, 1, 1))
    return fig


def bar_chart(t: Table, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = bar_figure(t)
    try:  # no version stamp: stable bytes
        write_atomic(path, lambda fh: fig.savefig(fh, format="png", metadata={"Software": None}))
    finally:
        plt.close(fig)


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)


def write_table(t: Table, out_dir: Path, plot: bool = True) -> list[Path]:
    base = out_dir / t.name
    paths = [base.with_suffix(".md"), base.with_suffix(".csv"), base.with_suffix(".tex")]
    for p, text in zip(paths, (markdown(t), to_csv(t), latex(t))):
        _write(p, text)
    if plot and t.values:
        paths.append(base.with_suffix(".png"))
        bar_chart(t, paths[-1])
    return paths
