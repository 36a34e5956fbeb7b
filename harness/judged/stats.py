"""Small numerical helpers shared by the judged metrics."""
from __future__ import annotations

import numpy as np


def fit_logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-6, iters: int = 100) -> np.ndarray:
    """Weighted logistic regression with soft labels y in [0, 1], no intercept (Newton's method).
    The tiny ridge keeps the Hessian invertible; it moves coefficients by ~1e-6 at most."""
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = np.exp(-np.logaddexp(0.0, -(X @ beta)))  # stable sigmoid
        grad = X.T @ (w * (p - y)) + ridge * beta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + ridge * np.eye(X.shape[1])
        step = np.clip(np.linalg.solve(hess, grad), -5, 5)  # damped: separable data must not overflow
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta
