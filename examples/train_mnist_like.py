"""Train a small CNN built from fastconv layers on synthetic digit-like images.

The data is made here: 28x28 images of the digits 0-9 drawn as seven-segment strokes, with
random shifts, stroke widths and noise, so no download is needed. A few epochs reach high
accuracy on held-out images.

Run: .venv/bin/python examples/train_mnist_like.py [--epochs 3] [--samples 3000]
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import fastconv

# Seven segments (a..g) as (row0, row1, col0, col1) boxes on a 20x12 glyph.
SEGMENTS = {
    "a": (0, 2, 1, 11), "b": (1, 10, 10, 12), "c": (10, 19, 10, 12), "d": (18, 20, 1, 11),
    "e": (10, 19, 0, 2), "f": (1, 10, 0, 2), "g": (9, 11, 1, 11),
}  # fmt: skip
DIGITS = ["abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg"]


def make_digits(n, generator):
    labels = torch.randint(0, 10, (n,), generator=generator)
    images = torch.zeros(n, 1, 28, 28)
    shifts = torch.randint(0, 8, (n, 2), generator=generator)
    for i, label in enumerate(labels.tolist()):
        top, left = 1 + shifts[i, 0].item(), 2 + shifts[i, 1].item()
        for seg in DIGITS[label]:
            r0, r1, c0, c1 = SEGMENTS[seg]
            images[i, 0, top + r0 : top + r1, left + c0 : left + c1] = 1.0
    images += 0.3 * torch.randn(images.shape, generator=generator)
    return images, labels


def make_model():
    return nn.Sequential(
        fastconv.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        fastconv.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        fastconv.Conv2d(32, 32, 3, padding=1, groups=32), fastconv.Conv2d(32, 32, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def train(epochs=3, samples=3000, batch=64, seed=0, progress=True):
    """Returns the held-out accuracy after training."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = make_digits(samples, gen)
    x_test, y_test = make_digits(500, gen)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        order = torch.randperm(samples, generator=gen)
        bar = tqdm(range(0, samples, batch), desc=f"epoch {epoch + 1}", disable=not progress)
        for start in bar:
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()
    accuracy = train(args.epochs, args.samples)
    print(f"held-out accuracy: {accuracy:.1%}")


if __name__ == "__main__":
    main()
