"""The workspace is bounded by the input and output sizes, never by the stride, padding or
dilation themselves: huge values with tiny outputs run on every family, forward and
backward, match torch in float64, and the process's resident-set peak grows by less than a
few megabytes (a staged row once spanned stride_w * output columns: stride=10**8 on an 8x8
image took 17 GB, stride=10**9 raised MemoryError)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastconv
from fastconv import _C

from ..helpers import compare_with_torch

ROOT = Path(__file__).resolve().parents[2]
CL = torch.channels_last
BIG, HUGE = 10**8, 10**9

# (id, input shape, weight shape, stride, padding, dilation, groups)
GEOMETRIES = [
    ("stride-1e8", (1, 1, 8, 8), (1, 1, 3, 3), BIG, 0, 1, 1),
    ("stride-1e9", (1, 1, 8, 8), (1, 1, 3, 3), HUGE, 0, 1, 1),
    ("stride-cols", (2, 1, 8, 8), (1, 1, 3, 3), (1, BIG), (0, BIG), 1, 1),
    ("stride-and-pad", (1, 1, 8, 8), (1, 1, 3, 3), BIG, BIG, 1, 1),
    ("dilation-and-pad", (1, 1, 8, 8), (1, 1, 3, 3), 1, BIG, BIG, 1),
    ("dilation-rows", (1, 1, 9, 70), (1, 1, 3, 5), 1, (BIG, 2), (BIG, 1), 1),
    ("1x1-stride-and-pad", (2, 1, 8, 8), (1, 1, 1, 1), BIG, BIG, 1, 1),
]
# (forced algorithm, channels in, out, groups): every family, with shapes it can run.
FAMILIES = [
    ("rows", 1, 1, 1),
    ("rows", 2, 4, 2),
    ("blocked", 16, 16, 16),
    ("dense", 4, 6, 1),
    ("dense", 8, 8, 2),
    ("winograd", 16, 16, 1),
    ("gemv", 4, 6, 1),
    ("auto", 16, 16, 1),
    ("auto", 16, 16, 16),
]

SCRIPT = r"""
import json, sys
import torch
import torch.nn.functional as F
import fastconv

geometries, families = json.loads(sys.argv[1])

def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])

out = []
for gid, xs, ws, stride, padding, dilation, _ in geometries:
    for alg, c, k, groups in families:
        xs_ = (xs[0], c) + tuple(xs[2:])
        ws_ = (k, c // groups) + tuple(ws[2:])
        g = torch.Generator().manual_seed(0)
        x = torch.randn(xs_, generator=g, dtype=torch.float64)
        w = torch.randn(ws_, generator=g, dtype=torch.float64)
        b = torch.randn(k, generator=g, dtype=torch.float64)
        args = (stride, padding, dilation, groups)
        xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
        y_ref = F.conv2d(xr, wr, br, *args)
        gy = torch.randn(y_ref.shape, generator=g, dtype=torch.float64)
        ref = [y_ref.detach(), *torch.autograd.grad(y_ref, (xr, wr, br), gy)]
        pair = lambda v: list(v) if isinstance(v, (list, tuple)) else [v, v]
        with fastconv.cpu_algorithm(alg):
            fams = [fastconv.cpu_family(x, w, stride, padding, dilation, groups, p)
                    for p in ("forward", "grad_input", "grad_weight")]
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # high-water mark := current RSS
            before = status_kb("VmRSS")
            y = fastconv.conv2d(x, w, b, *args)
            grads = torch.ops.fastconv.conv2d_backward(
                gy, x, w, pair(stride), pair(padding), pair(dilation), groups, [True] * 3)
            peak = status_kb("VmHWM")
        err = max((a - e).abs().max().item() for a, e in zip([y, *grads], ref))
        out.append(dict(id=gid, alg=alg, c=c, k=k, groups=groups, families=fams,
                        err=err, scale=max(e.abs().max().item() for e in ref),
                        grew_mb=(peak - before) / 1024))
print(json.dumps(out))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_huge_strides_paddings_and_dilations_need_no_more_memory_than_their_tensors():
    arg = json.dumps([GEOMETRIES, FAMILIES])
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, arg], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    results = json.loads(ran.stdout.strip().splitlines()[-1])
    assert len(results) == len(GEOMETRIES) * len(FAMILIES)
    bad = [r for r in results if r["err"] > 1e-9 * max(1.0, r["scale"]) or r["grew_mb"] > 16]
    assert not bad, json.dumps(bad, indent=1)
    ran_on = {f for r in results for f in r["families"]}
    # Every family that can run such geometries did (the FFT needs stride 1 and dilation 1,
    # so a tiny output with a huge padding cannot exist for it).
    assert {"rows", "blocked", "dense", "winograd", "gemv"} <= ran_on, ran_on


# (forced algorithm, channels in, out, groups, kernel size): every family and its staged paths.
SLOT_CASES = [
    ("rows", 2, 2, 2, 3),
    ("rows", 4, 8, 2, 3),
    ("blocked", 32, 32, 32, 3),
    ("fft", 2, 2, 2, 9),
    ("dense", 6, 10, 1, 3),
    ("dense", 3, 32, 1, 7),
    ("dense", 32, 48, 2, 3),
    ("dense", 32, 64, 1, 1),
    ("winograd", 32, 32, 1, 3),
    ("grouped", 64, 64, 8, 3),
    ("grouped", 64, 64, 16, 3),
    ("gemv", 32, 48, 1, 1),
    ("auto", 64, 64, 1, 3),
    ("auto", 64, 64, 32, 3),
]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("stride", [1, 2])
def test_no_pass_takes_a_workspace_slot_its_thread_holds(memory_format, stride):
    """Buffers alive together on one thread need different workspace slots
    (runtime/workspace.h): a kernel that took its driver's slot shared its buffer (the
    staged strided grouped grad-input once kept grad_output in the slot where its kernel
    keeps its taps: wrong gradients). A held slot now gives the second holder a buffer of
    its own and counts a clash; no family's pass in either layout may cause one."""
    before = _C.workspace_slot_clashes()
    for alg, c, k, groups, r in SLOT_CASES:
        hw = 3 if alg == "gemv" else 19
        x = torch.randn(2, c, hw, hw, dtype=torch.float64).contiguous(memory_format=memory_format)
        w = torch.randn(k, c // groups, r, r, dtype=torch.float64).contiguous(
            memory_format=memory_format
        )
        s = 1 if alg in ("winograd", "fft") else stride
        with fastconv.cpu_algorithm(alg):
            compare_with_torch(x, w, torch.randn(k, dtype=torch.float64), s, r // 2, 1, groups)
        assert _C.workspace_slot_clashes() == before, (alg, c, k, groups, r)
