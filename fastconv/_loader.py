"""Loads the compiled extension, which registers torch.ops.fastconv.*, after checking that
it was built against the torch that is installed."""

import torch

try:
    from . import _build_info
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError(
        "fastconv is not built: run `make build` (or `pip install --no-build-isolation -e .`)"
    ) from e

_torch_version = torch.__version__.split("+")[0]
if _torch_version != _build_info.TORCH_VERSION:
    raise ImportError(
        f"fastconv was built against torch {_build_info.TORCH_VERSION} but torch "
        f"{_torch_version} is installed; rebuild it (`make build`, or "
        "`pip install --no-build-isolation -e .`)"
    )

from . import _C  # noqa: E402, F401  (registers the ops)

ops = torch.ops.fastconv
