"""The build: CUDA kernels exactly when the machine can build them; every CPU kernel build works."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastconv
from fastconv import _build_info

ROOT = Path(__file__).resolve().parents[2]


def _setup_module():
    # setup.py's own toolkit detection, without running setup().
    spec = importlib.util.spec_from_file_location("fc_setup", ROOT / "setup.py")
    source = (ROOT / "setup.py").read_text().split("cuda_home = find_cuda_home()")[0]
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, str(ROOT / "setup.py"), "exec"), module.__dict__)
    return module


def test_cuda_built_when_expected():
    forced = os.environ.get("FASTCONV_CUDA")
    setup = _setup_module()
    expected, why = setup.want_cuda(torch.version.cuda, setup.find_cuda_home())
    if forced == "0":
        expected = False
    assert _build_info.CUDA_BUILT == expected, (
        f"CUDA build expected={expected} ({why}) but the build says {_build_info.CUDA_BUILT} "
        f"({_build_info.CUDA_REASON})"
    )
    assert fastconv.has_cuda() == expected
    has_cuda_kernel = torch._C._dispatch_has_kernel_for_dispatch_key("fastconv::conv2d", "CUDA")
    assert has_cuda_kernel == expected


def test_ops_registered_with_cpu_and_autograd_kernels():
    for op in ("fastconv::conv2d", "fastconv::conv2d_backward"):
        for key in ("CPU", "Autograd"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(op, key), (op, key)


def test_cpu_kernels_use_the_best_isa():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    isa = fastconv.cpu_isa()
    if " avx512f" in flags and " avx512vl" in flags and " avx512dq" in flags:
        assert isa == "avx512"
    elif " avx2" in flags and " fma" in flags:
        assert isa == "avx2"
    else:
        assert isa in {"base", "avx2", "avx512"}


def test_no_torch_convolution_in_the_extension():
    banned = [
        "at::conv2d",
        "at::convolution",
        "at::_convolution",
        "mkldnn_convolution",
        "cudnn_convolution",
        "at::im2col",
        "unfold(",
        "at::native::conv",
    ]
    for path in (ROOT / "csrc").rglob("*"):
        if path.suffix in {".cpp", ".cu", ".h", ".cuh"}:
            text = path.read_text()
            for name in banned:
                assert name not in text, f"{path.name} calls {name}"


@pytest.mark.parametrize("isa", ["avx2", "base"])
def test_narrower_kernel_builds_pass_the_differential_tests(isa):
    # Every x86 build carries AVX-512, AVX2 and baseline kernels, but a machine runs only
    # the best its CPU has. FASTCONV_CPU_ISA caps the choice, so the others are checked
    # here too: their vector width changes every tile, edge and tail of the row kernels.
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if isa == "avx2" and not (" avx2" in cpu and " fma" in cpu):
        pytest.skip("this CPU has no AVX2")
    env = dict(os.environ, FASTCONV_CPU_ISA=isa)
    probe = [sys.executable, "-c", "import fastconv; print(fastconv.cpu_isa())"]
    ran = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    assert ran.stdout.strip().splitlines()[-1] == isa
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    ran = subprocess.run(
        cmd + ["tests/api/test_functional.py", "tests/api/test_memory_format.py", "tests/families"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
