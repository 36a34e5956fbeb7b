"""How each Arena-Hard version turns a judge's text into counted games, as its own upstream code does.

``v0.1`` follows arena-hard-auto's 2024 scorer (gen_judgment.py / show_result.py @0489bf3), which produced the
published v0.1 leaderboard: one ``[[...]]`` pattern matched case-sensitively against the accumulated judgment;
no match asks the judge to continue (up to the config's attempts); two *different* labels end the game without a
verdict; only the five labels A>>B, A>B, A=B, B>A, B>>A are counted, each game on its own.

``v2.0`` follows the current code (@196f6b8): the config's patterns in order, on the upper-cased judgment, the
last match of the first pattern that matches; one call per game; mirrored labels (``B<A``...) count; a question
whose two games do not both have a counted verdict is dropped whole.

A game yields a list of scores from the judged model's point of view (1 win, 0.5 tie, 0 loss), a strong verdict
three times. Game 1 shows (baseline, model), game 2 (model, baseline).
"""
from __future__ import annotations

import re

STRONG_WEIGHT = 3
RULES = ("2024", "current")
# label -> score of assistant A
_A_SCORE_2024 = {"A>>B": (1.0, STRONG_WEIGHT), "A>B": (1.0, 1), "A=B": (0.5, 1), "B>A": (0.0, 1),
                 "B>>A": (0.0, STRONG_WEIGHT)}
_A_SCORE_CURRENT = {**_A_SCORE_2024, "B=A": (0.5, 1), "A<<B": (0.0, STRONG_WEIGHT), "A<B": (0.0, 1),
                    "B<<A": (1.0, STRONG_WEIGHT), "B<A": (1.0, 1)}
LABELS = {"2024": _A_SCORE_2024, "current": _A_SCORE_CURRENT}


def parse(judgment: str, patterns: list[str], rule: str) -> tuple[str | None, str | None, bool]:
    """(verdict, why none, ask the judge to continue)."""
    if rule == "2024":
        matches = [m for m in re.findall(patterns[0], judgment) if m != ""]
        if not matches:
            return None, "no verdict label", True
        if len(set(matches)) > 1:
            return None, f"conflicting verdicts {sorted(set(matches))}", False
        return matches[0].strip("\n"), None, False
    for p in patterns:
        matches = [m for m in re.findall(p, judgment.upper()) if m != ""]
        if matches:
            return matches[-1].strip("\n"), None, False
    return None, "no verdict label", False


def game_scores(game: dict | None, model_first: bool, rule: str) -> tuple[list[float] | None, str | None]:
    """Scores of the judged model from one game, or None with the reason it is not counted."""
    if game is None:
        return None, "judge call failed"
    label = game.get("score")
    if label is None:
        return None, game.get("why") or "no verdict label"
    if label not in LABELS[rule]:
        return None, f"label {label!r} not counted by the {rule} scorer"
    a, weight = LABELS[rule][label]
    return [a if model_first else 1.0 - a] * weight, None


def question_scores(rec: dict, rule: str) -> tuple[list[tuple[int, float]], list[str]]:
    """(game index, score) pairs counted for one judged question and the reasons for what is not counted."""
    out, why = [], []
    for g, game in enumerate(rec["games"]):
        s, reason = game_scores(game, model_first=g == 1, rule=rule)
        if s is None:
            why.append(f"game {g + 1}: {reason}")
        else:
            out.extend((g, x) for x in s)
    if rule == "current" and why:  # upstream drops the question when either game has no verdict
        return [], why + (["other game dropped with it"] if out else [])
    return out, why
