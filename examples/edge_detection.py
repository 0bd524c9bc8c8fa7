"""The textbook's edge-detection story, end to end, with fastconv.

1. An image with a dark band; the kernel [[1, -1]] finds its two vertical edges.
2. The transposed image has only horizontal edges: the same kernel sees none.
3. Learning that kernel back from (image, edges) by gradient descent with fastconv.Conv2d.

Run: .venv/bin/python examples/edge_detection.py
"""

import torch

import fastconv


def main():
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    print("image:\n", X)

    K = torch.tensor([[1.0, -1.0]])
    Y = fastconv.corr2d(X, K)
    print("edges (1: white to black, -1: black to white):\n", Y)
    print("edges of the transposed image:\n", fastconv.corr2d(X.t(), K))

    kernel, _ = learn_edge_kernel(X, Y, log=print)
    print("learned kernel:", kernel)


def learn_edge_kernel(X, Y, epochs=10, lr=3e-2, log=None):
    """The book's loop: fit a (1, 2) kernel, no bias, so that conv(X) matches the edges Y.
    Returns the learned kernel (1 x 2) and the loss of each epoch."""
    torch.manual_seed(0)
    conv2d = fastconv.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    X = X.reshape((1, 1) + tuple(X.shape))
    Y = Y.reshape((1, 1) + tuple(Y.shape))
    losses = []
    for i in range(epochs):
        Y_hat = conv2d(X)
        loss = (Y_hat - Y) ** 2
        conv2d.zero_grad()
        loss.sum().backward()
        conv2d.weight.data[:] -= lr * conv2d.weight.grad
        losses.append(loss.sum().item())
        if log:
            log(f"epoch {i + 1}, loss {losses[-1]:.3f}")
    return conv2d.weight.data.reshape((1, 2)), losses


if __name__ == "__main__":
    main()
