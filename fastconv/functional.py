"""fastconv.conv2d (the F.conv2d signature) and the textbook's corr2d.

Only argument normalisation happens here; every check that guards the kernels runs in C++
so the raw torch.ops.fastconv ops are exactly as safe."""

import torch
import torch.nn.functional as F

from . import _loader

_C = _loader._C
_op = _loader.ops.conv2d.default
_is_compiling = torch.compiler.is_compiling


def _pair(value, name):
    if type(value) is int:
        return (value, value)
    if isinstance(value, (tuple, list, torch.Size)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        if len(value) == 1:
            return (value[0], value[0])
        if len(value) == 2:
            return tuple(value)
    raise TypeError(f"fastconv.conv2d: {name} must be an int or a pair of ints, got {value!r}")


def _same_padding(input, weight, stride, dilation):
    """padding='same' as torch does it: half the dilated kernel on each side, and the odd
    extra row/column (even kernels) on the bottom/right."""
    if stride != (1, 1):
        raise RuntimeError(
            f"fastconv.conv2d: padding='same' is not supported for strided convolutions "
            f"(stride={stride})"
        )
    if weight.dim() != 4:
        raise RuntimeError(f"fastconv.conv2d: expected 4-D weight, got {weight.dim()}-D")
    total = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    extra_h, extra_w = total[0] % 2, total[1] % 2
    if extra_h or extra_w:
        input = F.pad(input, (0, extra_w, 0, extra_h))
    return input, (total[0] // 2, total[1] // 2)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Applies a 2-D cross-correlation, exactly ``torch.nn.functional.conv2d``.

    input: (N, C, H, W) or unbatched (C, H, W); weight: (K, C/groups, kH, kW);
    bias: (K,) or None; stride, dilation: int or pair; padding: int, pair, 'valid' or
    'same'; groups: int dividing C and K.
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"fastconv.conv2d: input must be a Tensor, got {type(input).__name__}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"fastconv.conv2d: weight must be a Tensor, got {type(weight).__name__}")
    stride = _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    if type(groups) is not int:
        raise TypeError(f"fastconv.conv2d: groups must be an int, got {groups!r}")
    dim = input.dim()
    if dim == 3:
        input = input.unsqueeze(0)
    elif dim != 4:
        raise RuntimeError(
            f"fastconv.conv2d: expected 3-D (unbatched) or 4-D (batched) input, got "
            f"{dim}-D input of size {tuple(input.shape)}"
        )
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            input, padding = _same_padding(input, weight, stride, dilation)
        else:
            raise RuntimeError(
                f"fastconv.conv2d: padding must be 'valid', 'same', an int or a pair of "
                f"ints, got {padding!r}"
            )
    else:
        padding = _pair(padding, "padding")
    if _is_compiling():
        out = _op(input, weight, bias, stride, padding, dilation, groups)
    else:
        out = _C.conv2d(input, weight, bias, stride, padding, dilation, groups)
    return out.squeeze(0) if dim == 3 else out


def corr2d(X, K):
    """The textbook's 2-D cross-correlation: 2-D X (h, w) and kernel K (kh, kw) give the
    valid-mode output (h - kh + 1, w - kw + 1). Differentiable. NumPy arrays in, NumPy out."""
    if not isinstance(X, torch.Tensor) or not isinstance(K, torch.Tensor):
        import numpy as np

        if isinstance(X, np.ndarray) and isinstance(K, np.ndarray):
            return corr2d(torch.from_numpy(X), torch.from_numpy(K)).numpy()
        raise TypeError(
            "fastconv.corr2d: X and K must both be torch Tensors or both NumPy arrays, got "
            f"{type(X).__name__} and {type(K).__name__}"
        )
    if X.dim() != 2 or K.dim() != 2:
        raise RuntimeError(
            f"fastconv.corr2d: X and K must be 2-D, got X of size {tuple(X.shape)} and K of "
            f"size {tuple(K.shape)}"
        )
    out = conv2d(X.reshape(1, 1, *X.shape), K.reshape(1, 1, *K.shape))
    return out.reshape(out.shape[2:])
