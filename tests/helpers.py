"""Shared test helpers: compare fastconv against torch's own convolution, ask which kernel
family runs a call, load and run the examples."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

import fastconv


def make_layout(t, layout):
    """The same values in another memory layout: contiguous, channels_last, a strided view
    of a larger buffer, or an expanded batch (stride 0)."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        big = torch.zeros(*t.shape[:-1], t.shape[-1] * 2, dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    if layout == "expanded" and t.dim() == 4 and t.shape[0] > 0:
        return t[:1].expand(t.shape[0], *t.shape[1:]) if (t == t[:1]).all() else t
    return t


# ---- a hypothesis space of geometries and layouts, shared by the API and family tests ----

LAYOUTS = ["contiguous", "channels_last", "strided", "expanded"]


@st.composite
def geometries(draw, max_channels=3):
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, max_channels))
    kg = draw(st.integers(1, max_channels))
    r, s = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "same":
        stride, padding = (1, 1), "same"
    elif kind == "valid":
        padding = "valid"
    elif kind == "int":
        padding = draw(st.integers(0, 3))
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    pads = (
        (0, 0)
        if isinstance(padding, str)
        else ((padding, padding) if isinstance(padding, int) else padding)
    )
    # Smallest input the dilated kernel fits in, plus a random margin.
    h = max(1, dil[0] * (r - 1) + 1 - 2 * pads[0]) + draw(st.integers(0, 9))
    w = max(1, dil[1] * (s - 1) + 1 - 2 * pads[1]) + draw(st.integers(0, 9))
    return dict(
        n=draw(st.integers(0, 3)),
        c=groups * cg,
        k=groups * kg,
        h=h,
        w=w,
        r=r,
        s=s,
        stride=stride if draw(st.booleans()) else stride[0] if stride[0] == stride[1] else stride,
        padding=padding,
        dilation=dil,
        groups=groups,
        bias=draw(st.booleans()),
        unbatched=draw(st.integers(0, 4)) == 0,
        layout=draw(st.sampled_from(LAYOUTS)),
    )


def build(geo, dtype=torch.float64):
    n = max(geo["n"], 1) if geo["unbatched"] else geo["n"]
    x = torch.randn(n, geo["c"], geo["h"], geo["w"], dtype=dtype)
    if geo["layout"] == "expanded":
        x = x[:1].expand_as(x).clone()  # equal images, so the expanded view is valid
    x = make_layout(x, geo["layout"])
    if geo["unbatched"]:
        x = x[0]
    w = torch.randn(geo["k"], geo["c"] // geo["groups"], geo["r"], geo["s"], dtype=dtype)
    w = make_layout(w, geo["layout"] if geo["layout"] != "expanded" else "contiguous")
    b = torch.randn(geo["k"], dtype=dtype) if geo["bias"] else None
    return x, w, b


def compare_with_torch(x, w, b, stride, padding, dilation, groups, *, grads=True, **tol):
    """Forward and all three gradients of fastconv.conv2d vs F.conv2d on the same tensors."""
    args = (stride, padding, dilation, groups)
    leaves = [t.detach().requires_grad_(grads) if t is not None else None for t in (x, w, b)]
    # torch's oracle gets plain contiguous copies: its own mkldnn backward returns permuted
    # weight grads for some channels_last weights with size-1 dims (found by the fuzzer:
    # unbatched 4x1x2 input, 2x2x1x2 channels_last weight, groups=2).
    ref_leaves = [
        t.detach().contiguous().clone().requires_grad_(grads) if t is not None else None
        for t in (x, w, b)
    ]
    y = fastconv.conv2d(leaves[0], leaves[1], leaves[2], *args)
    y_ref = F.conv2d(ref_leaves[0], ref_leaves[1], ref_leaves[2], *args)
    torch.testing.assert_close(y, y_ref, **tol)
    if not grads or y.numel() == 0:
        return
    gy = torch.randn_like(y_ref)
    inputs = [t for t in leaves if t is not None]
    ref_inputs = [t for t in ref_leaves if t is not None]
    got = torch.autograd.grad(y, inputs, gy)
    want = torch.autograd.grad(y_ref, ref_inputs, gy)
    for name, a, e in zip(("input", "weight", "bias"), got, want):
        torch.testing.assert_close(a, e, msg=lambda m, n=name: f"grad of {n}: {m}", **tol)


def vector_lanes(dtype=torch.float32):
    """Lanes of one vector of dtype in the kernels this process runs (csrc/cpu/simd/: 64-byte
    vectors for AVX-512, 32 for AVX2, 16 for the baseline build)."""
    width = {"avx512": 64, "avx2": 32}.get(fastconv.cpu_isa(), 16)
    return width // torch.empty((), dtype=dtype).element_size()


def grouped_fits(gw, dtype=torch.float32):
    """Whether the grouped family runs groups of gw channels in this process's kernels:
    groups of its widths that divide a vector, or fill two or three
    (csrc/cpu/grouped/grouped.h)."""
    lanes = vector_lanes(dtype)
    return gw in (2, 4, 8, 16, 24) and (lanes % gw == 0 or (gw % lanes == 0 and gw <= 3 * lanes))


def on_one_and_many_threads(fn):
    """fn() on one torch thread and on several (at least two), the thread count restored:
    for the reductions whose bits must not depend on it."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fn()
        torch.set_num_threads(max(2, threads))
        many = fn()
    finally:
        torch.set_num_threads(threads)
    return one, many


def family(x, w, stride=1, padding=0, dilation=1, groups=1, pass_="forward"):
    """The CPU kernel family fastconv runs for this call (fastconv.cpu_family)."""
    return fastconv.cpu_family(x, w, stride, padding, dilation, groups, pass_)


LAYOUT_COPIES = (
    "aten::copy_",
    "aten::contiguous",
    "aten::clone",
    "aten::to",
    "fastconv::layout_copy",
)


def assert_channels_last_passes_copy_nothing(x, w, b, stride, padding, dilation, groups):
    """Forward and every gradient of a layer on channels_last x, weight and grad_output (as
    model.to(memory_format=torch.channels_last) leaves them): nothing is copied to another
    layout (the profiler would show one of LAYOUT_COPIES under the ops), the results are
    channels_last, and they match torch in float64."""
    cl = torch.channels_last
    x, w = x.double().contiguous(memory_format=cl), w.double().contiguous(memory_format=cl)
    b = None if b is None else b.double()
    pair = lambda v: [v, v] if isinstance(v, int) else list(v)  # noqa: E731
    args = (pair(stride), pair(padding), pair(dilation), groups)
    y_ref = F.conv2d(x, w, b, *args)
    gy = torch.randn_like(y_ref).contiguous(memory_format=cl)
    with torch.profiler.profile() as prof:
        y = torch.ops.fastconv.conv2d(x, w, b, *args)
        grads = torch.ops.fastconv.conv2d_backward(gy, x, w, *args, [True, True, b is not None])
    copies = [e.name for e in prof.events() if e.name in LAYOUT_COPIES]
    assert copies == [], copies
    assert y.is_contiguous(memory_format=cl) and grads[0].is_contiguous(memory_format=cl)
    ref = torch.ops.aten.convolution_backward(
        gy,
        x,
        w,
        None if b is None else [w.shape[0]],
        *args[:3],
        False,
        [0, 0],
        groups,
        [True, True, b is not None],
    )
    torch.testing.assert_close(y, y_ref)
    for got, want in zip(grads, ref):
        if want is not None:
            torch.testing.assert_close(got, want)


def nchw_passes_copied(x, w, gy, stride, padding, dilation, groups, family_name):
    """The passes of an NCHW layer (forward, grad_input, grad_weight, each run on
    `family_name`) that make a layout copy: those promoted to channels_last kernels. Each
    pass's result is contiguous either way."""
    args = (stride, padding, dilation, groups)
    passes = {
        "forward": lambda: torch.ops.fastconv.conv2d(x, w, None, *args),
        "grad_input": lambda: torch.ops.fastconv.conv2d_backward(
            gy, x, w, *args, [True, False, False]
        )[0],
        "grad_weight": lambda: torch.ops.fastconv.conv2d_backward(
            gy, x, w, *args, [False, True, False]
        )[1],
    }
    copied = set()
    for name, run in passes.items():
        assert family(x, w, stride, padding, dilation, groups, name) == family_name, name
        with torch.profiler.profile() as prof:
            out = run()
        assert out.is_contiguous(), name
        if any(e.name == "fastconv::layout_copy" for e in prof.events()):
            copied.add(name)
    return copied


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name):
    """examples/<name>.py as a module, to call its functions."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name, *args):
    """Runs examples/<name>.py as a user would and returns what it printed."""
    cmd = [sys.executable, str(EXAMPLES / f"{name}.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
