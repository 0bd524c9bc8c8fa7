"""Build fastconv: a CppExtension everywhere, a CUDAExtension when a CUDA toolkit and a CUDA
build of torch are both present. FASTCONV_CUDA=0 or 1 forces the choice (1 fails loudly
when CUDA cannot be built). No GPU is needed to compile the CUDA kernels."""

import glob
import os
import shutil
import sys
import time

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _has_cudart(home):
    pats = ["lib64/libcudart.so*", "lib/libcudart.so*", "targets/*/lib/libcudart.so*"]
    return any(glob.glob(os.path.join(home, p)) for p in pats)


def find_cuda_home():
    """The toolkit directory holding bin/nvcc *and* libcudart. The nvcc first on PATH may
    be a wrapper script outside the toolkit, so PATH alone is not trusted."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
        try:  # a wrapper script that execs the real nvcc names the toolkit inside it
            with open(nvcc, errors="ignore") as f:
                for tok in f.read(4096).split():
                    if tok.endswith("/bin/nvcc") and os.path.isabs(tok):
                        candidates.append(os.path.dirname(os.path.dirname(tok)))
        except OSError:
            pass
    candidates.append("/usr/local/cuda")  # the toolkit's standard install location
    for home in candidates:
        if home and os.path.isfile(os.path.join(home, "bin", "nvcc")) and _has_cudart(home):
            return home
    return None


def want_cuda(torch_cuda, cuda_home):
    forced = os.environ.get("FASTCONV_CUDA")
    if forced not in (None, "", "0", "1"):
        sys.exit(f"FASTCONV_CUDA must be 0 or 1, got {forced!r}")
    if forced == "0":
        return False, "disabled by FASTCONV_CUDA=0"
    problems = []
    if torch_cuda is None:
        problems.append("torch is a CPU-only build")
    if cuda_home is None:
        problems.append("no CUDA toolkit found (set CUDA_HOME to the directory with bin/nvcc)")
    if forced == "1" and problems:
        sys.exit("FASTCONV_CUDA=1 but CUDA cannot be built: " + "; ".join(problems))
    if problems:
        return False, "; ".join(problems)
    return True, f"toolkit {cuda_home}, torch CUDA {torch_cuda}"


cuda_home = find_cuda_home()
if cuda_home:
    os.environ["CUDA_HOME"] = cuda_home  # before cpp_extension reads it at import

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

with_cuda, why = want_cuda(torch.version.cuda, cuda_home)
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

sources = sorted(glob.glob("csrc/ops/*.cpp"))
sources += sorted(glob.glob("csrc/cpu/**/*.cpp", recursive=True))
# -fopenmp: ATen's at::parallel_for is an inline template that only runs in parallel when
# the *extension* is compiled with OpenMP (torch's own build uses OpenMP); without it every
# kernel silently runs on one thread.
cxx_flags = ["-O3", "-fno-math-errno", "-fopenmp"]
extra_link = ["-fopenmp"]
if os.environ.get("FASTCONV_SANITIZE"):
    cxx_flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fopenmp", "-fsanitize=address,undefined"]
    extra_link += ["-fsanitize=address,undefined"]
define_macros = []
if with_cuda:
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    define_macros.append(("FASTCONV_WITH_CUDA", "1"))
    ext = CUDAExtension(
        "fastconv._C",
        sources,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
        extra_link_args=extra_link,
    )
else:
    ext = CppExtension(
        "fastconv._C",
        sources,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=extra_link,
    )

print(
    f"fastconv build: torch {torch.__version__}, CUDA {'on' if with_cuda else 'off'} ({why}), "
    f"arch list {os.environ['TORCH_CUDA_ARCH_LIST'] if with_cuda else '-'}",
    flush=True,
)

with open(os.path.join(ROOT, "fastconv", "_build_info.py"), "w") as f:
    f.write(
        "# Written by setup.py at build time; checked at import.\n"
        f"TORCH_VERSION = {torch.__version__.split('+')[0]!r}\n"
        f"CUDA_BUILT = {with_cuda!r}\n"
        f"CUDA_REASON = {why!r}\n"
        f"TORCH_CUDA_VERSION = {torch.version.cuda!r}\n"
        f"BUILD_TIME = {time.strftime('%Y-%m-%dT%H:%M:%S')!r}\n"
    )

setup(
    name="fastconv",
    version="0.1.0",
    description="Fast 2-D cross-correlation (F.conv2d semantics) for PyTorch, own CPU/CUDA kernels",
    # The benchmarks run from the checkout (`make bench`, `python -m benchmarks`); they are
    # not installed into users' site-packages.
    packages=["fastconv"],
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    install_requires=["torch", "numpy"],
    python_requires=">=3.9",
)
