"""Peak extra memory of one convolution call: what it holds beyond its inputs and results.

Run in a fresh process per measurement (``python -m benchmarks.memory SUITE CASE IMPL
MODE``), so that nothing freed by an earlier call can be reused unseen: the process resets
its resident-set high-water mark (Linux ``/proc/self/clear_refs``), makes one cold call, and
prints ``peak RSS - RSS before - bytes of the results`` in bytes. A cold call is the one
that counts: it is where fastconv's per-thread scratch and torch's workspaces are first
allocated. Linux only; ``extra_bytes`` returns None elsewhere.
"""

import ctypes
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

import fastconv

from .cases import SUITES
from .inputs import DTYPES, make_inputs

IMPLS = {"fastconv": fastconv.conv2d, "torch": F.conv2d}


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _trim_heap():
    """Hand freed heap memory back to the OS (glibc), so that the call's allocations land
    in fresh pages and show in the resident set instead of reusing resident free space."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(case, impl, mode, dtype, threads):
    """Bytes above the inputs and results at the peak of one cold call, in this process."""
    torch.set_num_threads(threads)
    x, w, b = make_inputs(case, dtype, "cpu")
    kw = case.conv_kwargs
    fn = IMPLS[impl]
    if mode == "fwd+bwd":
        x, w = x.requires_grad_(), w.requires_grad_()
        grad = torch.randn(fn(x.detach(), w.detach(), None, **kw).shape, dtype=dtype)
    _trim_heap()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # high-water mark := current RSS
    before = _status_kb("VmRSS")
    if mode == "fwd":
        results = [fn(x, w, b, **kw)]
    else:
        y = fn(x, w, b, **kw)
        results = [y, *torch.autograd.grad(y, (x, w), grad)]
    peak = _status_kb("VmHWM")
    held = sum(t.numel() * t.element_size() for t in results)
    return max(0, (peak - before) * 1024 - held)


def extra_bytes(suite, case, impl, mode, dtype_name, threads):
    """measure() in a fresh process; None where it cannot run (not Linux, or it failed)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    cmd = [sys.executable, "-m", "benchmarks.memory", suite, case, impl, mode, dtype_name]
    cmd.append(str(threads))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return int(out.stdout.split()[-1])


def main(argv):
    suite, name, impl, mode, dtype_name, threads = argv
    case = next(c for c in SUITES[suite].cases if c.name == name)
    print(measure(case, impl, mode, DTYPES[dtype_name], int(threads)))


if __name__ == "__main__":
    main(sys.argv[1:])
