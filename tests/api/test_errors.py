"""Bad input gets a clear Python exception naming the argument: never a crash, a hang or a
silently wrong answer. The raw torch.ops.fastconv ops validate too, since users can call
them directly."""

import pytest
import torch

import fastconv

ops = torch.ops.fastconv
f64 = dict(dtype=torch.float64)


def x4(*shape, **kw):
    return torch.randn(*shape, **{**f64, **kw})


X = x4(1, 4, 8, 8)
W = x4(6, 2, 3, 3)
ARGS = ([1, 1], [0, 0], [1, 1], 2)  # stride, padding, dilation, groups for X, W
GY = x4(1, 6, 6, 6)

# (id, call, exception types, regex the message must match)
CASES = [
    # --- fastconv.conv2d: ranks and sizes ---
    ("input_2d", lambda: fastconv.conv2d(x4(8, 8), W), RuntimeError, "input"),
    ("input_5d", lambda: fastconv.conv2d(x4(1, 1, 4, 8, 8), W), RuntimeError, "input"),
    ("weight_3d", lambda: fastconv.conv2d(X, x4(6, 3, 3)), RuntimeError, "weight"),
    ("weight_2d", lambda: fastconv.conv2d(X, x4(3, 3)), RuntimeError, "weight"),
    (
        "zero_channels",
        lambda: fastconv.conv2d(x4(1, 0, 8, 8), x4(1, 0, 3, 3)),
        RuntimeError,
        "channels|weight",
    ),
    ("zero_height", lambda: fastconv.conv2d(x4(1, 1, 0, 8), x4(1, 1, 1, 1)), RuntimeError, "input"),
    ("zero_kernel", lambda: fastconv.conv2d(X, x4(6, 2, 0, 3), groups=2), RuntimeError, "weight"),
    ("zero_out_channels", lambda: fastconv.conv2d(X, x4(0, 4, 3, 3)), RuntimeError, "weight"),
    (
        "channel_mismatch",
        lambda: fastconv.conv2d(X, x4(6, 3, 3, 3)),
        RuntimeError,
        r"weight.size\(1\)",
    ),
    (
        "groups_not_dividing_in",
        lambda: fastconv.conv2d(X, x4(6, 1, 3, 3), groups=3),
        RuntimeError,
        "groups",
    ),
    (
        "groups_not_dividing_out",
        lambda: fastconv.conv2d(X, x4(5, 2, 3, 3), groups=2),
        RuntimeError,
        "groups",
    ),
    ("groups_zero", lambda: fastconv.conv2d(X, W, groups=0), RuntimeError, "groups"),
    ("groups_negative", lambda: fastconv.conv2d(X, W, groups=-2), RuntimeError, "groups"),
    ("groups_float", lambda: fastconv.conv2d(X, W, groups=2.0), TypeError, "groups"),
    (
        "kernel_too_large",
        lambda: fastconv.conv2d(x4(1, 1, 4, 4), x4(1, 1, 5, 5)),
        RuntimeError,
        "kernel",
    ),
    (
        "dilated_kernel_too_large",
        lambda: fastconv.conv2d(x4(1, 1, 6, 6), x4(1, 1, 3, 3), dilation=3),
        RuntimeError,
        "kernel",
    ),
    # --- stride / padding / dilation ---
    ("stride_zero", lambda: fastconv.conv2d(X, W, stride=0, groups=2), RuntimeError, "stride"),
    (
        "stride_negative",
        lambda: fastconv.conv2d(X, W, stride=(1, -1), groups=2),
        RuntimeError,
        "stride",
    ),
    (
        "stride_three",
        lambda: fastconv.conv2d(X, W, stride=(1, 1, 1), groups=2),
        TypeError,
        "stride",
    ),
    ("stride_string", lambda: fastconv.conv2d(X, W, stride="2", groups=2), TypeError, "stride"),
    ("stride_float", lambda: fastconv.conv2d(X, W, stride=1.5, groups=2), TypeError, "stride"),
    (
        "dilation_zero",
        lambda: fastconv.conv2d(X, W, dilation=0, groups=2),
        RuntimeError,
        "dilation",
    ),
    (
        "dilation_negative",
        lambda: fastconv.conv2d(X, W, dilation=(-1, 1), groups=2),
        RuntimeError,
        "dilation",
    ),
    (
        "padding_negative",
        lambda: fastconv.conv2d(X, W, padding=-1, groups=2),
        RuntimeError,
        "padding",
    ),
    (
        "padding_unknown_string",
        lambda: fastconv.conv2d(X, W, padding="full", groups=2),
        RuntimeError,
        "padding",
    ),
    (
        "padding_same_strided",
        lambda: fastconv.conv2d(X, W, stride=2, padding="same", groups=2),
        RuntimeError,
        "same.*stride",
    ),
    ("padding_none", lambda: fastconv.conv2d(X, W, padding=None, groups=2), TypeError, "padding"),
    # --- dtypes and devices ---
    (
        "int_input",
        lambda: fastconv.conv2d(X.long(), W.long(), groups=2),
        RuntimeError,
        "input.*floating",
    ),
    (
        "bool_input",
        lambda: fastconv.conv2d(X > 0, W > 0, groups=2),
        RuntimeError,
        "input.*floating",
    ),
    (
        "complex_input",
        lambda: fastconv.conv2d(X.cdouble(), W.cdouble(), groups=2),
        RuntimeError,
        "input.*floating",
    ),
    ("mixed_dtypes", lambda: fastconv.conv2d(X.float(), W, groups=2), RuntimeError, "weight dtype"),
    (
        "bias_dtype",
        lambda: fastconv.conv2d(X, W, x4(6).float(), groups=2),
        RuntimeError,
        "bias dtype",
    ),
    ("mixed_devices", lambda: fastconv.conv2d(X, W.to("meta"), groups=2), RuntimeError, "device"),
    ("bias_wrong_length", lambda: fastconv.conv2d(X, W, x4(5), groups=2), RuntimeError, "bias"),
    ("bias_2d", lambda: fastconv.conv2d(X, W, x4(6, 1), groups=2), RuntimeError, "bias"),
    ("input_not_tensor", lambda: fastconv.conv2d([[1.0]], W), TypeError, "input"),
    ("weight_not_tensor", lambda: fastconv.conv2d(X, 3.0), TypeError, "weight"),
    # --- Conv2d / corr2d / Conv2D ---
    (
        "module_bad_padding_mode",
        lambda: fastconv.Conv2d(1, 1, 3, padding_mode="mirror"),
        ValueError,
        "padding_mode",
    ),
    ("module_groups_mismatch", lambda: fastconv.Conv2d(4, 6, 3, groups=4), ValueError, "groups"),
    (
        "module_channel_mismatch",
        lambda: fastconv.Conv2d(3, 4, 3)(torch.randn(1, 5, 8, 8)),
        RuntimeError,
        "weight.size",
    ),
    (
        "module_same_strided",
        lambda: fastconv.Conv2d(1, 1, 3, stride=2, padding="same"),
        ValueError,
        "same",
    ),
    ("corr2d_3d", lambda: fastconv.corr2d(x4(1, 6, 8), x4(1, 2)), RuntimeError, "2-D"),
    ("corr2d_kernel_3d", lambda: fastconv.corr2d(x4(6, 8), x4(1, 1, 2)), RuntimeError, "2-D"),
    (
        "corr2d_kernel_too_large",
        lambda: fastconv.corr2d(x4(2, 2), x4(3, 3)),
        RuntimeError,
        "kernel",
    ),
    ("corr2d_list", lambda: fastconv.corr2d([[1.0]], x4(1, 1)), TypeError, "X and K"),
    ("Conv2D_wrong_rank", lambda: fastconv.Conv2D((1, 2))(x4(1, 6, 8)), RuntimeError, "2-D"),
    # --- raw ops ---
    ("op_input_3d", lambda: ops.conv2d(x4(4, 8, 8), W, None, *ARGS), RuntimeError, "input"),
    (
        "op_negative_padding",
        lambda: ops.conv2d(X, W, None, [1, 1], [-1, 0], [1, 1], 2),
        RuntimeError,
        "padding",
    ),
    (
        "op_zero_stride",
        lambda: ops.conv2d(X, W, None, [0, 1], [0, 0], [1, 1], 2),
        RuntimeError,
        "stride",
    ),
    (
        "op_zero_groups",
        lambda: ops.conv2d(X, W, None, [1, 1], [0, 0], [1, 1], 0),
        RuntimeError,
        "groups",
    ),
    (
        "op_one_element_stride",
        lambda: ops.conv2d(X, W, None, [1], [0, 0], [1, 1], 2),
        RuntimeError,
        "stride",
    ),
    (
        "op_int_tensors",
        lambda: ops.conv2d(X.int(), W.int(), None, *ARGS),
        RuntimeError,
        "input.*floating",
    ),
    ("op_bias_length", lambda: ops.conv2d(X, W, x4(2), *ARGS), RuntimeError, "bias"),
    (
        "op_bwd_grad_shape",
        lambda: ops.conv2d_backward(x4(1, 6, 5, 5), X, W, *ARGS, [True] * 3),
        RuntimeError,
        "grad_output",
    ),
    (
        "op_bwd_grad_dtype",
        lambda: ops.conv2d_backward(GY.float(), X, W, *ARGS, [True] * 3),
        RuntimeError,
        "grad_output dtype",
    ),
    (
        "op_bwd_weight_channels",
        lambda: ops.conv2d_backward(GY, X, x4(6, 3, 3, 3), *ARGS, [True] * 3),
        RuntimeError,
        "weight",
    ),
    (
        "op_bwd_kernel_too_large",
        lambda: ops.conv2d_backward(GY, x4(1, 4, 2, 2), W, *ARGS, [True] * 3),
        RuntimeError,
        "kernel",
    ),
]


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_catalogue_is_large_and_distinct():
    assert len({c[0] for c in CASES}) == len(CASES) >= 40


def test_next_call_after_an_error_works():
    with pytest.raises(RuntimeError):
        fastconv.conv2d(X, x4(6, 3, 3, 3))
    torch.testing.assert_close(
        fastconv.conv2d(X, W, groups=2), torch.nn.functional.conv2d(X, W, groups=2)
    )
