"""Convert a torchvision ResNet-18 to fastconv, check it computes the same thing, and time
a forward and a training step against the original, side by side in one process.

Run: .venv/bin/python examples/convert_resnet.py [--batch 8] [--size 224]
"""

import argparse
import copy
import time

import torch
import torch.nn.functional as F
import torchvision

import fastconv


def timed(fn, repeat=3):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    torch.manual_seed(0)
    original = torchvision.models.resnet18(weights=None)
    converted = fastconv.convert(copy.deepcopy(original))
    n = sum(type(m) is fastconv.Conv2d for m in converted.modules())
    print(f"converted {n} convolution layers")

    x = torch.randn(args.batch, 3, args.size, args.size)
    target = torch.randint(0, 1000, (args.batch,))
    original.eval()
    converted.eval()
    with torch.no_grad():
        diff = (converted(x) - original(x)).abs().max().item()
    print(f"max |difference| of the logits: {diff:.2e}")

    def step(model):
        model.zero_grad()
        F.cross_entropy(model(x), target).backward()

    for mode in ("eval", "train"):
        rows = []
        for name, model in (("torch", original), ("fastconv", converted)):
            getattr(model, mode)()
            if mode == "eval":
                with torch.no_grad():
                    rows.append((name, timed(lambda m=model: m(x))))
            else:
                rows.append((name, timed(lambda m=model: step(m))))
        what = "forward" if mode == "eval" else "training step"
        (_, t_torch), (_, t_fc) = rows
        print(f"{what:14s} torch {t_torch * 1e3:8.1f} ms   fastconv {t_fc * 1e3:8.1f} ms   "
              f"torch/fastconv {t_torch / t_fc:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
