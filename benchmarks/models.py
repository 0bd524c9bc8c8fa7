"""The models suite: whole torchvision models, converted with fastconv.convert, against
the original.

Every model is built with weights=None (nothing is downloaded) after torch.manual_seed(0)
and copied four times: torch's and the converted one, each in NCHW and in channels_last
(parameters and input). Each mode -- inference at batch 1 and 8 under
torch.inference_mode(), a training step at batch 8 (train(), forward, cross-entropy,
backward) -- times the four in turn in this one process (timing.time_interleaved), so
that a change in the machine's speed reaches them alike. The headline ratio is torch's
time in its faster layout over fastconv's in its faster one: what a user who picks the
better layout for each gets. Before timing, the converted model's eval output at batch 1
is checked against the original's in both layouts.
"""

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import fastconv

from .report import fmt_ms, fmt_num, geomean, render_markdown, render_text
from .timing import time_interleaved

MODEL_NAMES = (
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "regnet_y_400mf",
    "resnext50_32x4d",
    "shufflenet_v2_x1_0",
    "densenet121",
    "googlenet",
    "squeezenet1_1",
    "fcn_resnet50",
)
QUICK_MODELS = ("resnet18", "mobilenet_v2")  # one dense, one depthwise network

# Builder arguments beyond weights=None: no auxiliary heads (their outputs would need a
# loss of their own), no SciPy truncated-normal init (slow, and the timings do not care),
# no backbone weights either.
MODEL_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
    "fcn_resnet50": {"weights_backbone": None, "aux_loss": False},
}
IMAGE_SIZE = 224


@dataclass(frozen=True)
class Mode:
    batch: int
    train: bool
    budget_s: float  # time for the timed repetitions of all four variants together


# A training step's time varies by a quarter between repetitions (the interquartile range of
# resnet50's, 2 cores): with the 4 repetitions a 12 s budget gave it, its best/best ratio
# read 0.91x and 0.94x in two runs and 1.22x with 12. So every model gets at least
# MIN_REPS, and a training step's budget buys about ten for the ResNet-50-sized models. A
# repetition of all four variants takes 0.03-0.75 s at batch 1, 0.14-5 s at batch 8 and
# 0.5-22 s for a training step (fcn_resnet50 the slowest); a full run (13 models) takes
# about 12 minutes on 2 cores.
MODES = {
    "infer-b1": Mode(batch=1, train=False, budget_s=3.0),
    "infer-b8": Mode(batch=8, train=False, budget_s=10.0),
    "train-b8": Mode(batch=8, train=True, budget_s=30.0),
}
QUICK_MODES = ("infer-b1",)
QUICK_BUDGET_SCALE = 1 / 3
MIN_REPS, MAX_REPS = 5, 15

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
LAYOUT_LABELS = {"nchw": "NCHW", "channels_last": "CL"}
IMPLS = ("torch", "fastconv")

# The converted model computes the same function; only rounding differs, and it grows
# with depth, so the tolerance is loose. ATOL is relative to the largest logit: untrained
# networks' logits range from 1e-12 (mobilenet_v2) to 1e3, so a fixed one would pass
# anything or nothing.
RTOL, ATOL = 1e-3, 1e-3


def build(name):
    """The torchvision model `name`, untrained, in eval mode."""
    # Imported here: only this suite and the zoo need torchvision, and the GPU machine's
    # environment may lack it.
    import torchvision

    return torchvision.models.get_model(name, weights=None, **MODEL_KWARGS.get(name, {})).eval()


def logits(output):
    """The tensor a model's loss is computed on: segmentation models return a dict."""
    return output["out"] if isinstance(output, dict) else output


def _infer(model, x):
    with torch.inference_mode():
        model(x)


def _train_step(model, x, target):
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits(model(x)), target).backward()


def _check(variants, x):
    """{layout: max abs difference of the converted model's eval logits from the
    original's}, {layout: the original's largest logit magnitude}, the first layout's
    message where they differ by more than RTOL/ATOL or None, and the logits' shape."""
    diffs, scale, problem = {}, {}, None
    with torch.inference_mode():
        for layout, fmt in LAYOUTS.items():
            xl = x.contiguous(memory_format=fmt)
            ref = logits(variants["torch", layout](xl)).float()
            got = logits(variants["fastconv", layout](xl)).float()
            diffs[layout] = (got - ref).abs().max().item()
            scale[layout] = ref.abs().max().item()
            try:
                torch.testing.assert_close(got, ref, rtol=RTOL, atol=ATOL * scale[layout])
            except AssertionError as e:
                problem = problem or f"{layout}: " + str(e).splitlines()[0]
    return diffs, scale, problem, ref.shape


def run_model(name, modes, device, reps=None, budget_scale=1.0):
    """The rows of one model, one per mode."""
    torch.manual_seed(0)
    original = build(name)
    converted = fastconv.convert(copy.deepcopy(original))
    convs = sum(isinstance(m, nn.Conv2d) for m in original.modules())
    swapped = sum(isinstance(m, fastconv.Conv2d) for m in converted.modules())
    variants = {}
    for impl, model in (("torch", original), ("fastconv", converted)):
        for layout, fmt in LAYOUTS.items():
            variants[impl, layout] = copy.deepcopy(model).to(device=device, memory_format=fmt)
    del original, converted

    gen = torch.Generator().manual_seed(0)

    def image(batch):
        return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen).to(device)

    diffs, scale, problem, out_shape = _check(variants, image(1))
    rows = []
    for mode_name in modes:
        mode = MODES[mode_name]
        x = image(mode.batch)
        # One class per image, or per pixel for segmentation (logits [N, classes, H, W]).
        target_shape = (mode.batch,) + tuple(out_shape[2:])
        target = torch.randint(0, out_shape[1], target_shape, generator=gen).to(device)
        fns = {}
        for (impl, layout), model in variants.items():
            xl = x.contiguous(memory_format=LAYOUTS[layout])
            model.train(mode.train)
            if mode.train:
                fns[f"{impl}-{layout}"] = lambda m=model, x=xl, t=target: _train_step(m, x, t)
            else:
                fns[f"{impl}-{layout}"] = lambda m=model, x=xl: _infer(m, x)
        budget = mode.budget_s * budget_scale
        timings = time_interleaved(fns, device, budget, MIN_REPS, MAX_REPS, reps)
        ms = {key: t["ms"] for key, t in timings.items()}
        best = {impl: min(LAYOUTS, key=lambda lay, i=impl: ms[f"{i}-{lay}"]) for impl in IMPLS}
        rows.append(
            {
                "suite": "models",
                "case": name,
                "mode": mode_name,
                "batch": mode.batch,
                "train": mode.train,
                "input": f"{mode.batch}x3x{IMAGE_SIZE}x{IMAGE_SIZE}",
                "convs": convs,
                "converted": swapped,
                "timings": timings,
                # torch time / fastconv time in the same layout
                "ratio": {lay: ms[f"torch-{lay}"] / ms[f"fastconv-{lay}"] for lay in LAYOUTS},
                "best_layout": best,
                "headline": ms[f"torch-{best['torch']}"] / ms[f"fastconv-{best['fastconv']}"],
                "max_abs_diff": diffs,  # eval logits at batch 1, converted vs original
                "max_abs_logit": scale,  # the original's, for scale
                "matches": problem is None,
                "mismatch": problem,
            }
        )
    return rows


def run(names, modes, device, reps=None, budget_scale=1.0):
    """The rows of all models, with a progress bar; warns of outputs that differ."""
    rows = []
    with tqdm(total=len(names), unit="model", dynamic_ncols=True) as bar:
        for name in names:
            bar.set_postfix_str(f"models: {name}")
            model_rows = run_model(name, modes, device, reps, budget_scale)
            if model_rows and not model_rows[0]["matches"]:
                bar.write(f"warning: {name} converted differs: {model_rows[0]['mismatch']}")
            rows += model_rows
            bar.update()
    return rows


def table(rows):
    header = ["model"] + [f"{i} {LAYOUT_LABELS[lay]} ms" for i in IMPLS for lay in LAYOUTS]
    header += [f"torch/fc {LAYOUT_LABELS[lay]}" for lay in LAYOUTS]
    header += ["best/best", "max diff / max logit"]
    body = []
    for r in rows:
        cells = [r["case"]]
        cells += [fmt_ms(r["timings"][f"{i}-{lay}"]["ms"]) for i in IMPLS for lay in LAYOUTS]
        cells += [f"{r['ratio'][lay]:.2f}x" for lay in LAYOUTS]
        cells += [f"{r['headline']:.2f}x"]
        rel = [d / r["max_abs_logit"][lay] for lay, d in r["max_abs_diff"].items() if d]
        diff = fmt_num(max(rel, default=0.0), ".1e")
        cells += [diff if r["matches"] else f"{diff} MISMATCH"]
        body.append(cells)
    return header, body


SUMMARY_TITLE = "models: torch time / fastconv time, geometric mean over models"


def summary(rows):
    header = ["mode", "models", "best/best geomean", "min", "NCHW geomean", "CL geomean"]
    body = []
    for mode in MODES:
        sel = [r for r in rows if r["mode"] == mode]
        if not sel:
            continue
        worst = min(sel, key=lambda r: r["headline"])
        cells = [mode, str(len(sel)), f"{geomean([r['headline'] for r in sel]):.2f}x"]
        cells += [f"{worst['headline']:.2f}x ({worst['case']})"]
        cells += [f"{geomean([r['ratio'][lay] for r in sel]):.2f}x" for lay in LAYOUTS]
        body.append(cells)
    return header, body


def report(rows, markdown=False):
    """The per-mode tables and the summary, as terminal text or markdown."""
    render = render_markdown if markdown else render_text
    mark = "### " if markdown else "== "
    parts = []
    for mode_name, mode in MODES.items():
        sel = [r for r in rows if r["mode"] == mode_name]
        if not sel:
            continue
        what = "training step" if mode.train else "inference"
        parts.append(
            f"{mark}models, {mode_name}: torchvision models, {what} at batch {mode.batch}, "
            f"{IMAGE_SIZE}x{IMAGE_SIZE}; torch vs fastconv.convert, NCHW and channels_last"
        )
        parts += [render(*table(sel), left=1), ""]
    parts += [mark + SUMMARY_TITLE, render(*summary(rows), left=1)]
    return "\n".join(parts) + "\n"


def write_plot(path, rows, meta):
    """Bars of the headline ratio per model, one per mode, against a line at 1.0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    names = list(dict.fromkeys(r["case"] for r in rows))
    modes = [m for m in MODES if any(r["mode"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(10, max(4.0, 0.45 * len(names) * len(modes) / 2 + 2)))
    height = 0.8 / len(modes)
    for k, (mode, color) in enumerate(zip(modes, ("tab:blue", "tab:orange", "tab:green"))):
        ys, vals = [], []
        for i, name in enumerate(names):
            row = next((r for r in rows if r["case"] == name and r["mode"] == mode), None)
            if row:
                ys.append(i + (k - (len(modes) - 1) / 2) * height)
                vals.append(row["headline"])
        # Bars grow from 1.0: right where fastconv is faster, left where it is slower.
        widths = [v - 1.0 for v in vals]
        ax.barh(ys, widths, left=1.0, height=height, color=color, label=mode)
        for y, v in zip(ys, vals):
            ax.text(v, y, f" {v:.2f}x ", va="center", ha="left" if v >= 1 else "right", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first model on top
    ax.set_xlabel("torch time / fastconv time, each in its faster layout (log scale)")
    ax.set_title(
        f"torchvision models, fastconv.convert vs torch, {meta['device_name']}, "
        f"{meta['threads']} threads"
    )
    ax.legend(loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
