"""Arena-Hard style control as arena-hard-auto's current show_result.py does it (@196f6b8).

Per answer: token length and markdown counts (headers h1-h6, ordered + unordered list items, ``**``/``__`` bold
spans, counted after removing fenced code blocks; utils/add_markdown_info.py). Per battle the features are
  length:   (len_m - len_b) / (len_m + len_b)
  markdown: (d_m - d_b) / (d_m + d_b + 1), with d = count / (len + 1)
standardised over all battles (mean 0, sample std 1), and enter a Bradley-Terry logistic regression beside the
model indicators (the baseline's strength is the anchor, 0). The reported win rate is sigmoid(strength), i.e.
with the style features at their mean: with one model only, the centring makes the control weak; with several
models fitted together it separates their strength from their style.
"""
from __future__ import annotations

import re

import numpy as np

from harness.judged.stats import fit_logistic

FEATURES = ("token_len", "header_count", "list_count", "bold_count")
CONTROLS = {"both": (0, 1, 2, 3), "length": (0,), "markdown": (1, 2, 3)}
_CODE = re.compile("```([^`]*)```")


def markdown_counts(text: str) -> dict:
    for block in _CODE.findall(text):
        text = text.replace(block, "")
    return {"header_count": {f"h{i}": len(re.findall(rf"^#{{{i}}}\s", text, re.MULTILINE)) for i in range(1, 7)},
            "list_count": {"ordered": len(re.findall(r"^\s*\d+\.\s", text, re.MULTILINE)),
                           "unordered": len(re.findall(r"^\s*[-*+]\s", text, re.MULTILINE))},
            "bold_count": {"**": len(re.findall(r"\*\*[^*\n]+\*\*", text)), "__": len(re.findall(r"__[^_\n]+__", text))}}


def vector(meta: dict) -> np.ndarray:
    """The four features of an answer's metadata (nested counts are summed, as upstream does)."""
    return np.array([meta[k] if isinstance(meta[k], (int, float)) else sum(meta[k].values()) for k in FEATURES],
                    dtype=float)


def battle_features(model_vec: np.ndarray, base_vec: np.ndarray) -> np.ndarray:
    """Rows: battles; columns: length, headers, lists, bold (unnormalised)."""
    m, b = np.atleast_2d(model_vec), np.atleast_2d(base_vec)
    out = np.zeros_like(m)
    out[:, 0] = (m[:, 0] - b[:, 0]) / (m[:, 0] + b[:, 0])
    dm, db = m[:, 1:] / (m[:, :1] + 1), b[:, 1:] / (b[:, :1] + 1)
    out[:, 1:] = (dm - db) / (dm + db + 1)
    return out


def standardise(features: np.ndarray) -> np.ndarray:
    std = features.std(axis=0, ddof=1)
    std[std == 0] = 1.0  # a constant feature carries no information (upstream would divide by zero)
    return (features - features.mean(axis=0)) / std


def fit(models: list[str], model_idx: np.ndarray, features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strengths (natural-log odds against the baseline) per model and the style coefficients."""
    X = np.zeros((len(y), len(models) + features.shape[1]))
    X[np.arange(len(y)), model_idx] = 1.0
    X[:, len(models):] = features
    beta = fit_logistic(X, y, np.ones(len(y)))
    return beta[:len(models)], beta[len(models):]
