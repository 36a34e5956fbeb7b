"""`harness leaderboard`: regenerate leaderboards/ (Markdown, CSV, LaTeX, PNG) from results/."""
from __future__ import annotations

from harness.commands import registrar


def _leaderboard(args) -> int:
    from harness.leaderboard import InvalidResults, regenerate
    from harness.leaderboard.tables import SpecError

    try:
        out = regenerate(args.results, args.output, args.specs, args.references, skip_invalid=args.skip_invalid,
                         plot=not args.no_plots)
    except InvalidResults as e:
        print(f"error: {e}\n(fix or remove them, or pass --skip-invalid to leave them out)")
        return 2
    except SpecError as e:
        print(f"error: {e}")
        return 2
    for p in out["problems"]:
        print(f"skipped: {p}")
    for p in out["removed"]:
        print(f"removed {p}: its runs were replaced by newer runs of the same configuration")
    print(f"wrote {len(out['written'])} files into {args.output}")
    return 0


@registrar
def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="Regenerate leaderboard tables from results/.")
    p.add_argument("--results", default="results", help="Results directory (default: results).")
    p.add_argument("--output", default="leaderboards", help="Where tables go (default: leaderboards).")
    p.add_argument("--specs", help="Table specs directory (default: leaderboards/specs).")
    p.add_argument("--references", help="Published reference rows (default: leaderboards/references).")
    p.add_argument("--skip-invalid", action="store_true", help="Leave out invalid/duplicate result files (still listed).")
    p.add_argument("--no-plots", action="store_true", help="Tables only, no PNG charts.")
    p.set_defaults(func=_leaderboard)
