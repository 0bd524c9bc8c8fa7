"""The tensors a benchmark case runs on, the same in the timing process and in the
memory probe's fresh process."""

import torch

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "tf32": torch.float32,  # float32 storage, TF32 tensor-core math (CUDA only)
}


def make_inputs(case, dtype, device, seed=0):
    """Input, weight and bias (None without one) of a case, drawn on the CPU from a seeded
    generator so that every device and process sees the same values."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    x = randn(case.N, case.C, case.H, case.W)
    w = randn(case.K, case.C // case.groups, case.R, case.S)
    b = randn(case.K) if case.bias else None
    return x, w, b
