"""The layer zoo: every distinct nn.Conv2d of torchvision's classification models,
fastconv.conv2d against F.conv2d one layer at a time.

The layers come from one forward of each model in ZOO_MODELS at its standard input size,
batch 1, with a forward pre-hook on every nn.Conv2d that records the layer's geometry
(input shape without the batch, weight shape, stride, padding, dilation, groups, bias,
padding_mode). A geometry seen in several places counts once, with the models and how
often each has it. The list is cached in zoo_layers.json (committed, so that a run builds
no model; `--zoo-collect` rebuilds it). Each layer then runs at batch 1 and 8, in NCHW
and channels_last (input and weight), forward and forward+backward (gradients of input,
weight and bias), torch and fastconv in turn, block by block: 16 short measurements a
layer (timing.time_brief), some 8000 in all.
"""

import json
import os
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import fastconv
from fastconv.shapes import conv_out_size

from .cases import MODES
from .report import fmt_ms, fmt_num, geomean, render_markdown, render_text
from .timing import conv_statement, time_brief

# (model, input size): torchvision's classification models at their standard sizes.
ZOO_MODELS = tuple((name, 224) for name in ("resnet18", "resnet34", "resnet50", "resnet101"))
ZOO_MODELS += tuple(
    (name, 224)
    for name in (
        "resnext50_32x4d",
        "resnext101_32x8d",
        "wide_resnet50_2",
        "regnet_x_400mf",
        "regnet_x_1_6gf",
        "regnet_y_400mf",
        "regnet_y_1_6gf",
        "mobilenet_v2",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "efficientnet_b1",
        "mnasnet1_0",
        "shufflenet_v2_x1_0",
        "convnext_tiny",
        "densenet121",
        "googlenet",
    )
)
ZOO_MODELS += (("inception_v3", 299), ("squeezenet1_1", 224), ("vgg16", 224))

LAYERS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo_layers.json")
BATCHES = (1, 8)
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
LAYOUT_LABELS = {"nchw": "NCHW", "channels_last": "CL"}
IMPLS = {"torch": F.conv2d, "fastconv": fastconv.conv2d}
# Seconds per measurement (timing.time_brief); 16 measurements a layer.
MIN_RUN_TIME = 0.02
QUICK_LIMIT = 6
BACKWARD = ("grad_input", "grad_weight")  # the passes whose families the fwd+bwd rows name
GEOMETRY = ("input", "weight", "stride", "padding", "dilation", "groups", "bias", "padding_mode")


# ---- collecting -----------------------------------------------------------------------------


def _record(seen, path, module, args):
    seen.append(
        (
            path,
            {
                "input": list(args[0].shape[1:]),
                "weight": list(module.weight.shape),
                "stride": list(module.stride),
                "padding": module.padding
                if isinstance(module.padding, str)
                else list(module.padding),
                "dilation": list(module.dilation),
                "groups": module.groups,
                "bias": module.bias is not None,
                "padding_mode": module.padding_mode,
            },
        )
    )


def collect(models=ZOO_MODELS, progress=False):
    """The distinct layers of `models` ((name, input size) pairs), in the order first seen:
    dicts of GEOMETRY, a name (model:module of the first occurrence) and occurrences
    ({model: how many of its layers have this geometry})."""
    from .models import build  # late: it imports torchvision

    found = {}
    for name, size in tqdm(models, unit="model", disable=not progress):
        torch.manual_seed(0)
        model = build(name)
        seen = []
        hooks = [
            module.register_forward_pre_hook(partial(_record, seen, path))
            for path, module in model.named_modules()
            if isinstance(module, nn.Conv2d)
        ]
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
        for hook in hooks:
            hook.remove()
        for path, geometry in seen:
            key = json.dumps(geometry, sort_keys=True)
            layer = found.setdefault(key, {"name": f"{name}:{path}", **geometry, "occurrences": {}})
            layer["occurrences"][name] = layer["occurrences"].get(name, 0) + 1
    return list(found.values())


def save_layers(path, layers, models=ZOO_MODELS):
    """One layer per line, so that a re-collection diffs readably."""
    import torchvision

    head = {
        "about": "distinct nn.Conv2d layers of torchvision models (benchmarks/zoo.py)",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "models": dict(models),
    }
    with open(path, "w") as f:
        f.write(json.dumps(head)[:-1] + ', "layers": [\n')
        f.write(",\n".join(json.dumps(layer) for layer in layers))
        f.write("\n]}\n")


def load_layers(path):
    with open(path) as f:
        return json.load(f)["layers"]


def spread(layers, limit):
    """`limit` layers evenly spaced through the list, so that a subset still spans the
    models; all of them without a limit."""
    if limit is None or limit >= len(layers):
        return list(layers)
    return [layers[i * len(layers) // limit] for i in range(limit)]


# ---- one layer ------------------------------------------------------------------------------


def conv_kwargs(layer):
    pad = layer["padding"]
    return {
        "stride": tuple(layer["stride"]),
        "padding": pad if isinstance(pad, str) else tuple(pad),
        "dilation": tuple(layer["dilation"]),
        "groups": layer["groups"],
    }


def out_hw(layer):
    (_, h, w), (_, _, r, s) = layer["input"], layer["weight"]
    pad = layer["padding"]
    if pad == "same":
        return h, w
    ph, pw = (0, 0) if pad == "valid" else pad
    (sh, sw), (dh, dw) = layer["stride"], layer["dilation"]
    return conv_out_size(h, r, ph, sh, dh), conv_out_size(w, s, pw, sw, dw)


def flops(layer, batch):
    """Forward multiply-adds x 2: 2*N*K*P*Q*(C/groups)*R*S."""
    (p, q), (k, cg, r, s) = out_hw(layer), layer["weight"]
    return 2 * batch * k * p * q * cg * r * s


def shape(layer):
    """E.g. "64x56x56 * 128x64x1x1 s2": input without the batch, weight, and what differs
    from the defaults (one number where height and width agree)."""
    s = "x".join(map(str, layer["input"])) + " * " + "x".join(map(str, layer["weight"]))
    for label, key, default in (("s", "stride", 1), ("p", "padding", 0), ("d", "dilation", 1)):
        value = layer[key]
        if isinstance(value, str):
            s += f" p={value}"
        elif any(v != default for v in value):
            s += f" {label}{value[0] if value[0] == value[1] else ','.join(map(str, value))}"
    if layer["groups"] != 1:
        s += f" g{layer['groups']}"
    if layer["bias"]:
        s += " +b"
    if layer["padding_mode"] != "zeros":
        s += f" {layer['padding_mode']}"
    return s


def kernel_family(x, w, kw, backward_pass=None):
    """The CPU kernel family fastconv picks for this call's forward, or for one backward
    pass ("grad_input", "grad_weight"), where fastconv can say; None where it cannot."""
    try:
        which = fastconv.cpu_family
    except AttributeError:  # a fastconv without the helper
        return None
    args = (x, w, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    try:
        family = which(*args) if backward_pass is None else which(*args, pass_=backward_pass)
    except TypeError:  # a helper that does not name the backward passes
        return None
    except Exception as e:
        return f"error: {e}".splitlines()[0]
    return None if family is None else str(family)


def _inputs(layer, batch, dtype, device):
    gen = torch.Generator().manual_seed(0)

    def randn(*dims):
        return torch.randn(*dims, generator=gen).to(device=device, dtype=dtype)

    x = randn(batch, *layer["input"])
    w = randn(*layer["weight"])
    b = randn(layer["weight"][0]) if layer["bias"] else None
    kw = conv_kwargs(layer)
    if layer["padding_mode"] != "zeros":
        # nn.Conv2d pads such layers itself before a padding-0 convolution; so does this,
        # outside the timing.
        (ph, pw), kw["padding"] = kw["padding"], (0, 0)
        x = F.pad(x, (pw, pw, ph, ph), mode=layer["padding_mode"])
    return x, w, b, kw


def run_layer(layer, device, dtype, min_run_time):
    """Rows of one layer: each batch x layout x mode, torch and fastconv timed in turn."""
    rows = []
    for batch in BATCHES:
        x0, w0, b, kw = _inputs(layer, batch, dtype, device)
        for layout, fmt in LAYOUTS.items():
            x, w = x0.contiguous(memory_format=fmt), w0.contiguous(memory_format=fmt)
            on_cpu = device == "cpu"
            family = kernel_family(x, w, kw) if on_cpu else None
            backward = {p: kernel_family(x, w, kw, p) if on_cpu else None for p in BACKWARD}
            status, diff = {}, None
            try:
                y = fastconv.conv2d(x, w, b, **kw)
                diff = (y.double() - F.conv2d(x, w, b, **kw).double()).abs().max().item()
            except Exception as e:
                status["fastconv"] = f"error: {e}".splitlines()[0]
                y = F.conv2d(x, w, b, **kw)
            grad = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
            grad = grad.to(device=device, dtype=dtype).contiguous(memory_format=fmt)
            del y
            for mode in MODES:
                stmt, env = conv_statement(mode, x, w, b, kw, grad)
                n_flops = flops(layer, batch) * (3 if mode == "fwd+bwd" else 1)
                envs = {name: dict(env, fn=fn) for name, fn in IMPLS.items() if name not in status}
                try:
                    timings = time_brief(stmt, envs, min_run_time)
                except Exception:  # one of them fails: time each alone to say which
                    timings = {}
                    for name, one in envs.items():
                        try:
                            timings[name] = time_brief(stmt, {name: one}, min_run_time)[name]
                        except Exception as e:
                            status[name] = f"error: {e}".splitlines()[0]
                gflops = {name: n_flops / (t["ms"] * 1e6) for name, t in timings.items()}
                ratio = None
                if len(timings) == 2:
                    ratio = timings["torch"]["ms"] / timings["fastconv"]["ms"]
                rows.append(
                    {
                        "suite": "zoo",
                        "case": layer["name"],
                        "mode": mode,
                        "layout": layout,
                        "batch": batch,
                        "shape": shape(layer),
                        "layer": {k: layer[k] for k in GEOMETRY},
                        "occurrences": layer["occurrences"],
                        "flops": n_flops,
                        "timings": timings,
                        "status": dict(status),
                        "ratio": ratio,  # torch time / fastconv time
                        "gflops": gflops,
                        "family": family,  # of the forward
                        # and of the backward's passes, in the fwd+bwd rows
                        **({"backward_families": backward} if mode == "fwd+bwd" else {}),
                        "max_abs_diff": diff,  # forward, fastconv vs torch, same dtype
                    }
                )
    return rows


def run(layers, device, dtype, min_run_time):
    rows = []
    with tqdm(total=len(layers), unit="layer", dynamic_ncols=True) as bar:
        for layer in layers:
            bar.set_postfix_str(f"zoo: {layer['name']}")
            rows += run_layer(layer, device, dtype, min_run_time)
            bar.update()
    return rows


# ---- reporting ------------------------------------------------------------------------------


def _seen(occurrences):
    n = sum(occurrences.values())
    return f"{n}x in {len(occurrences)} models" if len(occurrences) > 1 else f"{n}x"


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def table(rows, mode):
    """One line per layer and batch: both layouts' times, ratios and fastconv's GFLOP/s."""
    header = ["layer", "shape", "N", "seen", "family"]
    for lay in LAYOUTS:
        label = LAYOUT_LABELS[lay]
        header += [f"torch {label} ms", f"fc {label} ms", f"torch/fc {label}"]
    header += [f"fc GFLOP/s {LAYOUT_LABELS[lay]}" for lay in LAYOUTS]
    by_key = {(r["case"], r["batch"], r["layout"]): r for r in rows if r["mode"] == mode}
    body = []
    for name, batch in dict.fromkeys((r["case"], r["batch"]) for r in rows):
        sel = [by_key.get((name, batch, lay)) for lay in LAYOUTS]
        first = next(r for r in sel if r)
        families = [f for f in dict.fromkeys(r["family"] for r in sel if r) if f]  # NCHW, CL
        cells = [name, first["shape"], str(batch), _seen(first["occurrences"])]
        cells += [" / ".join(families) or "-"]
        for r in sel:
            t = r["timings"] if r else {}
            cells += [fmt_ms(t.get("torch", {}).get("ms")), fmt_ms(t.get("fastconv", {}).get("ms"))]
            cells += [_ratio(r and r["ratio"])]
        cells += [fmt_num(r and r["gflops"].get("fastconv"), ".1f") for r in sel]
        body.append(cells)
    return header, body


SUMMARY_TITLE = "zoo: torch time / fastconv time over the distinct layers"


def summary(rows):
    header = ["mode", "layout", "N", "layers", "geomean", ">= 1.0x", "min", "min layer"]
    body = []
    for mode in MODES:
        for lay in LAYOUTS:
            for batch in BATCHES + ("all",):
                sel = [
                    r
                    for r in rows
                    if (r["mode"], r["layout"]) == (mode, lay)
                    and batch in ("all", r["batch"])
                    and r["ratio"] is not None
                ]
                if not sel:
                    continue
                ratios = [r["ratio"] for r in sel]
                worst = min(sel, key=lambda r: r["ratio"])
                at_least = sum(v >= 1.0 for v in ratios) / len(ratios)
                body.append(
                    [mode, LAYOUT_LABELS[lay], str(batch), str(len(sel))]
                    + [f"{geomean(ratios):.2f}x", f"{100 * at_least:.0f}%"]
                    + [f"{worst['ratio']:.2f}x", f"{worst['case']} N{worst['batch']}"]
                )
    return header, body


def report(rows, markdown=False, worst=10):
    """Markdown: a table per mode over every layer, then the summary. Terminal: the
    `worst` lowest ratios and the summary (hundreds of layers do not fit a screen)."""
    render = render_markdown if markdown else render_text
    mark = "### " if markdown else "== "
    parts = []
    if markdown:
        for mode in MODES:
            if any(r["mode"] == mode for r in rows):
                parts.append(f"{mark}zoo, {mode}: distinct nn.Conv2d layers of torchvision models")
                parts += [render(*table(rows, mode)), ""]
    else:
        timed = sorted((r for r in rows if r["ratio"] is not None), key=lambda r: r["ratio"])
        if timed:
            parts.append(f"{mark}zoo: the {min(worst, len(timed))} lowest torch/fastconv ratios")
            header = ["layer", "shape", "N", "layout", "mode", "torch/fc", "family"]
            body = [
                [r["case"], r["shape"], str(r["batch"]), LAYOUT_LABELS[r["layout"]], r["mode"]]
                + [_ratio(r["ratio"]), str(r["family"] or "-")]
                for r in timed[:worst]
            ]
            parts += [render(header, body), ""]
    errors = sorted({f"{r['case']}: {s}" for r in rows for s in r["status"].values()})
    if errors:
        parts += [f"{mark}zoo errors", *errors, ""]
    parts += [mark + SUMMARY_TITLE, render(*summary(rows))]
    return "\n".join(parts) + "\n"


def write_plot(path, rows, meta):
    """Per batch, each mode x layout's ratios sorted, against a line at 1.0: how many
    layers fastconv wins and by how much it loses the others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BATCHES), figsize=(13, 5), sharey=True, squeeze=False)
    styles = {"nchw": "-", "channels_last": "--"}
    colors = {"fwd": "tab:blue", "fwd+bwd": "tab:orange"}
    for ax, batch in zip(axes[0], BATCHES):
        for mode in MODES:
            for lay in LAYOUTS:
                ratios = sorted(
                    r["ratio"]
                    for r in rows
                    if (r["batch"], r["mode"], r["layout"]) == (batch, mode, lay)
                    and r["ratio"] is not None
                )
                if not ratios:
                    continue
                xs = [i / max(1, len(ratios) - 1) for i in range(len(ratios))]
                won = sum(v >= 1.0 for v in ratios) / len(ratios)
                label = f"{mode} {LAYOUT_LABELS[lay]} ({100 * won:.0f}% >= 1x)"
                ax.plot(xs, ratios, styles[lay], color=colors[mode], label=label)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("fraction of layers, sorted by ratio")
        ax.set_title(f"batch {batch}")
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0][0].set_ylabel("torch time / fastconv time (log scale)")
    n = len({r["case"] for r in rows})
    fig.suptitle(
        f"fastconv.conv2d vs F.conv2d over {n} distinct torchvision conv layers, "
        f"{meta['device_name']}, {meta['threads']} threads, {meta['dtype']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
