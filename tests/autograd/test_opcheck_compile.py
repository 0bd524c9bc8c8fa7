"""The ops under torch.library.opcheck, torch.compile(fullgraph=True) and torch.export."""

import pytest
import torch
from torch import nn

import fastconv

OPCHECK_CASES = [
    # (input shape, weight shape, bias, stride, padding, dilation, groups)
    ((1, 1, 6, 8), (1, 1, 1, 2), False, [1, 1], [0, 0], [1, 1], 1),
    ((2, 4, 9, 9), (4, 1, 3, 3), True, [2, 2], [1, 1], [1, 1], 4),
    ((2, 4, 9, 8), (6, 2, 3, 3), True, [1, 2], [1, 0], [2, 1], 2),
    ((1, 3, 7, 7), (5, 3, 1, 1), True, [1, 1], [0, 0], [1, 1], 1),
]


FORMATS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("fmt", FORMATS, ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", OPCHECK_CASES)
def test_opcheck_conv2d(case, fmt):
    xs, ws, bias, stride, padding, dilation, groups = case
    x = torch.randn(xs, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(ws, dtype=torch.float64, requires_grad=True)
    b = torch.randn(ws[0], dtype=torch.float64, requires_grad=True) if bias else None
    torch.library.opcheck(
        torch.ops.fastconv.conv2d.default, (x, w, b, stride, padding, dilation, groups)
    )


@pytest.mark.parametrize("fmt", FORMATS, ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", OPCHECK_CASES)
@pytest.mark.parametrize("mask", [[True, True, True], [True, False, False], [False, True, True]])
def test_opcheck_conv2d_backward(case, mask, fmt):
    xs, ws, _, stride, padding, dilation, groups = case
    x = torch.randn(xs, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(ws, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.conv2d(x, w, None, stride, padding, dilation, groups)
    gy = torch.randn_like(y).requires_grad_()
    torch.library.opcheck(
        torch.ops.fastconv.conv2d_backward.default,
        (gy, x, w, stride, padding, dilation, groups, mask),
    )


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            fastconv.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            fastconv.Conv2d(8, 8, 3, padding="same", groups=8),
            nn.ReLU(),
            fastconv.Conv2d(8, 4, 2, stride=2, padding_mode="reflect", padding=1),
        )

    def forward(self, x):
        return self.body(x)


def _grads(model, x):
    model.zero_grad()
    out = model(x)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = SmallNet()
    x = torch.randn(2, 3, 16, 16)
    eager_out, eager_grads = _grads(model, x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out, grads = _grads(compiled, x)
    torch.testing.assert_close(out, eager_out)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b)


def test_compile_inductor_matches_eager():
    model = SmallNet()
    x = torch.randn(2, 3, 16, 16)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    eager_out, eager_grads = _grads(model, x)
    out, grads = _grads(torch.compile(model, fullgraph=True), x)
    torch.testing.assert_close(out, eager_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_export_runs_and_matches():
    model = SmallNet().eval()
    x = torch.randn(2, 3, 16, 16)
    program = torch.export.export(model, (x,))
    assert any("fastconv.conv2d" in str(node.target) for node in program.graph.nodes)
    torch.testing.assert_close(program.module()(x), model(x))
