"""The log-linear mixing law, a second surrogate beside LightGBM: y = c + exp(t . w).

Data Mixing Laws (Ye et al. 2024) fit a validation loss as c + k exp(sum_j t_j r_j) over mixture
proportions r; Olmix (Ai2, 2026) uses this law as its default surrogate. The weights sum to 1, so k is
folded into t. Fitted by nonlinear least squares from a start found by linear regression of log(y - c).
"""

from __future__ import annotations

import numpy as np


def predict_loglinear(params: dict, X: np.ndarray) -> np.ndarray:
    """Predictions of a fitted law (`fit_loglinear`'s dict) for weight rows X."""
    return params["c"] + np.exp(np.clip(X @ np.asarray(params["t"]), -50, 50))


def fit_loglinear(X: np.ndarray, y: np.ndarray) -> dict:
    """{"c": float, "t": [per domain]} minimising the squared error of c + exp(X t) against y."""
    from scipy.optimize import least_squares

    spread = float(y.std()) or 1.0
    c0 = float(y.min()) - 0.5 * spread
    t0, *_ = np.linalg.lstsq(X, np.log(y - c0), rcond=None)

    def residual(p: np.ndarray) -> np.ndarray:
        return (p[0] + np.exp(np.clip(X @ p[1:], -50, 50)) - y) / spread

    result = least_squares(residual, np.concatenate([[c0], t0]), method="trf", max_nfev=100 * (X.shape[1] + 1))
    return {"c": float(result.x[0]), "t": result.x[1:].tolist()}
