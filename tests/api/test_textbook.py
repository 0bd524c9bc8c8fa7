"""The seed's notebook cells, run through fastconv: the values are the book's."""

import numpy as np
import pytest
import torch

import fastconv

from ..helpers import load_example, run_example


def book_image():
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    return X


def test_corr2d_book_example():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert fastconv.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]
    assert fastconv.reference.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]


def test_edge_detection():
    X = book_image()
    K = torch.tensor([[1.0, -1.0]])
    Y = fastconv.corr2d(X, K)
    expected = torch.zeros(6, 7)
    expected[:, 1] = 1
    expected[:, 5] = -1
    assert torch.equal(Y, expected)
    # The transposed image has only horizontal edges: the vertical-edge kernel sees none.
    assert torch.equal(fastconv.corr2d(X.t(), K), torch.zeros(8, 5))


def test_corr2d_matches_naive_loop():
    X = torch.randn(13, 17, dtype=torch.float64)
    K = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(fastconv.corr2d(X, K), fastconv.reference.corr2d(X, K))


def test_corr2d_numpy_in_numpy_out():
    X = np.random.default_rng(0).standard_normal((9, 11)).astype(np.float32)
    K = np.array([[1.0, -1.0]], dtype=np.float32)
    Y = fastconv.corr2d(X, K)
    assert isinstance(Y, np.ndarray) and Y.shape == (9, 10)
    np.testing.assert_allclose(Y, X[:, :-1] - X[:, 1:], rtol=1e-6, atol=1e-6)


def test_corr2d_is_differentiable():
    X = torch.randn(6, 8, dtype=torch.float64)
    K = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: fastconv.corr2d(X, k), (K,))


def test_textbook_layer():
    layer = fastconv.Conv2D((1, 2))
    assert layer.weight.shape == (1, 2) and torch.equal(layer.bias, torch.zeros(1))
    X = book_image()
    expected = fastconv.reference.corr2d(X, layer.weight.detach()) + layer.bias.detach()
    torch.testing.assert_close(layer(X), expected)


def test_learning_the_edge_kernel():
    """The book's training loop (examples/edge_detection.py) with fastconv.Conv2d learns
    K = [[1, -1]] back from (X, Y)."""
    X = book_image()
    Y = fastconv.corr2d(X, torch.tensor([[1.0, -1.0]]))
    learned, losses = load_example("edge_detection").learn_edge_kernel(X, Y)
    assert losses[-1] < 0.1
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert torch.allclose(learned, torch.tensor([[1.0, -1.0]]), atol=0.1), learned


@pytest.mark.parametrize("layer", [fastconv.Conv2D((1, 2)), fastconv.Conv2d(1, 1, (1, 2))])
def test_layers_train_like_torch(layer):
    """A gradient step through fastconv equals the same step through torch's own conv."""
    X = torch.randn(6, 8)
    w = layer.weight.detach().clone().requires_grad_()
    if isinstance(layer, fastconv.Conv2D):
        out = layer(X)
        ref = torch.nn.functional.conv2d(X[None, None], w[None, None])[0, 0] + layer.bias
    else:
        out = layer(X[None, None])
        ref = torch.nn.functional.conv2d(X[None, None], w, layer.bias)
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad)


def test_edge_detection_example_runs():
    """examples/edge_detection.py tells the whole story and learns the kernel."""
    import re

    out = run_example("edge_detection")
    losses = [float(v) for v in re.findall(r"epoch \d+, loss ([0-9.]+)", out)]
    assert len(losses) == 10 and losses[-1] < 0.1
    learned = [float(v) for v in re.findall(r"-?\d+\.\d+", out.split("learned kernel:")[1])]
    assert abs(learned[0] - 1) < 0.1 and abs(learned[1] + 1) < 0.1
