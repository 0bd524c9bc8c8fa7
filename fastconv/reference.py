"""The textbook's naive double loop: the correctness oracle of last resort and the
benchmarks' slow baseline. Deliberately unoptimised."""

import torch


def corr2d(X, K):
    """Compute 2D cross-correlation (valid mode), one output element at a time."""
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype, device=X.device)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y
