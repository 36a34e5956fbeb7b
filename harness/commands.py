"""Subcommand registrars. Each entry adds one subparser; keeps cli.py small."""
from __future__ import annotations

REGISTRARS: list = []


def registrar(fn):
    REGISTRARS.append(fn)
    return fn


# Import modules that define subcommands, so they register.
from harness import cmd_train  # noqa: E402,F401
from harness import cmd_judge  # noqa: E402,F401
from harness import cmd_data  # noqa: E402,F401
from harness import cmd_eval, cmd_leaderboard, cmd_train_and_eval  # noqa: E402,F401
