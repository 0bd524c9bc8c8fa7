"""How the benchmarks time a call, and how they notice other processes skewing it.

conv_statement is the statement that times a convolution; time_autorange times one
statement (torch.utils.benchmark), time_brief several in turn in a fixed short time,
time_naive the textbook's slow loop, time_interleaved several whole-model steps in turn;
others_cpu_* measure the CPU time other processes took meanwhile.
"""

import os
import statistics
import time

import torch
from torch.utils.benchmark import Timer

import fastconv

# The naive loop costs about 8 us of Python per output pixel on CPU almost regardless of the
# kernel size (measured: 64^2..256^2 images, 3x3..7x7 kernels), so the estimate is per pixel,
# with a small per-tap term for the large kernels. On CUDA every pixel launches kernels.
NAIVE_S_PER_PIXEL = {"cpu": 1e-5, "cuda": 5e-5}
NAIVE_S_PER_TAP = 5e-9
NAIVE_BUDGET_S = 1.0

SLOW_CALL_S = 0.5


def conv_statement(mode, x, w, b, kw, grad):
    """The statement and globals that time a convolution `fn` (bound later as env["fn"]):
    the forward call, or (fwd+bwd) the forward and every gradient through torch.autograd."""
    if mode == "fwd":
        return "fn(x, w, b, **kw)", {"x": x, "w": w, "b": b, "kw": kw, "torch": torch}
    xg, wg = x.detach().requires_grad_(), w.detach().requires_grad_()
    bg = None if b is None else b.detach().requires_grad_()
    inputs = (xg, wg) if bg is None else (xg, wg, bg)
    env = {"x": xg, "w": wg, "b": bg, "kw": kw, "inputs": inputs, "grad": grad, "torch": torch}
    return "torch.autograd.grad(fn(x, w, b, **kw), inputs, grad)", env


def time_autorange(stmt, env, min_run_time):
    """Median and IQR in ms. blocked_autorange syncs CUDA and picks the block size; it runs
    at torch's current thread count only when told (its default is one thread). A call
    slower than SLOW_CALL_S (torch's backward on a 4K image) is timed twice, no more."""
    timer = Timer(stmt, globals=env, num_threads=torch.get_num_threads())
    first = timer.timeit(1)
    if first.median > SLOW_CALL_S:
        m = timer.timeit(1)
        t = min(first.median, m.median)
        return {"ms": t * 1e3, "iqr_ms": abs(first.median - m.median) * 1e3, "runs": 2}
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3, "runs": len(m.times) * m.number_per_run}


def time_brief(stmt, envs, min_run_time, blocks=3):
    """{name: median and IQR in ms} of `stmt` under each globals dict of `envs`, in about
    min_run_time each: one warm-up call each, then `blocks` rounds that each time a block
    of calls of every one in turn (a third of min_run_time long, the order rotated each
    round): a change in the VM's speed during the measurement then reaches torch and
    fastconv alike, where timed one after the other only one of them would see it.
    blocked_autorange spends 3-5 times min_run_time finding its block size, which
    thousands of measurements (the zoo) cannot afford. A call slower than a block is
    timed twice, the warm-up included."""
    threads = torch.get_num_threads()
    timers = {name: Timer(stmt, globals=env, num_threads=threads) for name, env in envs.items()}
    first = {name: timer.timeit(1).median for name, timer in timers.items()}
    number = {name: int(min_run_time / blocks / first[name]) for name in timers}
    names, times = list(timers), {name: [] for name in timers}
    for b in range(blocks):
        k = b % len(names)
        for name in names[k:] + names[:k]:
            if number[name] > 0:
                times[name].append(timers[name].timeit(number[name]).median)
            elif b == 0:
                times[name].append(timers[name].timeit(1).median)
    result = {}
    for name in names:
        if number[name] > 0:
            result[name] = dict(_summary(times[name]), runs=number[name] * blocks)
        else:
            a, b = first[name], times[name][0]
            result[name] = {"ms": min(a, b) * 1e3, "iqr_ms": abs(a - b) * 1e3, "runs": 2}
    return result


def _summary(times):
    """Median and IQR in ms of a list of seconds."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"ms": statistics.median(times) * 1e3, "iqr_ms": (q[2] - q[0]) * 1e3, "runs": len(times)}


def time_naive(X, K, min_run_time):
    """The naive loop takes up to a second a call, so a few plain calls suffice."""
    times = []
    while not times or (sum(times) < min_run_time and len(times) < 3):
        if X.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fastconv.reference.corr2d(X, K)
        if X.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return _summary(times)


def naive_estimate_s(case, device):
    p, q = case.out_hw
    return p * q * (NAIVE_S_PER_PIXEL[device] + case.R * case.S * NAIVE_S_PER_TAP)


def _timed_call(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_interleaved(fns, device, budget_s, min_reps, max_reps, reps=None):
    """{name: median/IQR in ms} of calls too slow for Timer's blocks (a model's forward or
    training step). One warm-up call each, then repetitions that call every function once,
    in an order rotated each time: a drift in the machine's speed (another process, the
    clock) then reaches all of them alike, and none always runs after the same neighbour.
    Without `reps`, as many repetitions as fit `budget_s` by the warm-up times, within
    [min_reps, max_reps]."""
    names = list(fns)
    warm = sum(_timed_call(fns[name], device) for name in names)
    if reps is None:
        reps = max(min_reps, min(max_reps, round(budget_s / max(warm, 1e-9))))
    times = {name: [] for name in names}
    for i in range(reps):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(_timed_call(fns[name], device))
    return {name: _summary(t) for name, t in times.items()}


def others_cpu_seconds():
    """CPU seconds other processes have used so far: the busy time of all CPUs (/proc/stat)
    minus this process's and its finished children's (the memory probes, which never run
    while something is timed). Other load skews multi-threaded timings: an OpenMP barrier
    waits a whole time slice for a descheduled thread."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                int, f.readline().split()[1:9]
            )
    except (OSError, ValueError):
        return None
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy - own.user - own.system - own.children_user - own.children_system


def others_cpu_fraction(since, seconds):
    """The share of all CPUs that other processes kept busy since `since` (seconds ago)."""
    now = others_cpu_seconds()
    if now is None or since is None or seconds <= 0:
        return None
    return max(0.0, (now - since) / (seconds * (os.cpu_count() or 1)))


def warn_busy(fraction, verb):
    if fraction is not None and fraction > 0.1:
        print(
            f"warning: other processes {verb} {100 * fraction:.0f}% of the CPUs busy; "
            "multi-threaded timings, torch's especially, are inflated",
            flush=True,
        )
