"""fastconv in real models: torchvision networks converted with fastconv.convert, trained,
compiled, exported, autocast, serialised and run under DDP."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import fastconv

from ..helpers import load_example, run_example


def dilated_grouped_net():
    """ResNeXt-style grouped 3x3 convolutions with the last stages dilated (as DeepLab does)."""
    return torchvision.models.resnext50_32x4d(
        weights=None, replace_stride_with_dilation=[False, True, True]
    )


MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "convnext_tiny": lambda: torchvision.models.convnext_tiny(weights=None),
    "resnext50_dilated": dilated_grouped_net,
}


def pair(name):
    torch.manual_seed(0)
    original = MODELS[name]()
    converted = fastconv.convert(copy.deepcopy(original))
    n_convs = sum(type(m) is fastconv.Conv2d for m in converted.modules())
    assert n_convs == sum(type(m) is nn.Conv2d for m in original.modules()) > 0
    return original, converted


@pytest.mark.parametrize("name", MODELS)
def test_converted_model_matches_in_eval_and_train_mode(name):
    original, converted = pair(name)
    x = torch.randn(2, 3, 64, 64)
    for mode in ("eval", "train"):
        getattr(original, mode)()
        getattr(converted, mode)()
        outs = []
        for model in (converted, original):
            torch.manual_seed(1)  # the same dropout masks in train mode
            outs.append(model(x))
        torch.testing.assert_close(
            *outs, rtol=1e-3, atol=1e-4, msg=lambda m, mode=mode: f"{mode}: {m}"
        )


@pytest.mark.parametrize("name, batch, size", [("resnet18", 4, 48), ("mobilenet_v2", 8, 96)])
def test_five_sgd_steps_give_the_same_weights(name, batch, size):
    """Five SGD steps through the converted model land as close to a float64 run of the
    original as five float32 steps through torch's own convolution do (float32 rounding is
    amplified by batch norm on a batch of 4, so the two float32 runs differ by ~1e-3)."""
    original, converted = pair(name)
    reference = copy.deepcopy(original).double()
    x, target = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    for model in (original, converted, reference):
        model.train()
        for m in model.modules():  # float32 and float64 would draw different dropout masks
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
        torch.manual_seed(1)
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x.to(next(model.parameters()).dtype)), target).backward()
            opt.step()

    # Compared on the convolution weights: parameters whose exact gradient is zero (a batch
    # norm bias feeding another batch norm) drift on float32 noise in both runs alike.
    def conv_weights(model):
        return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]

    def distance(model, to=reference):
        pairs = zip(conv_weights(model), conv_weights(to))
        return float(sum((p.double() - r.double()).norm() ** 2 for p, r in pairs) ** 0.5)

    # (MobileNetV2's ReLU6 clipping and batch norm make float32 training drift from float64
    # by a good part of the step size whichever convolution runs: the rule is relative.)
    ours, theirs = distance(converted), distance(original)
    assert ours <= 2 * theirs + 1e-6, (ours, theirs)
    torch.manual_seed(0)  # the initial weights, as pair() made them
    assert distance(MODELS[name]()) > 0.1  # the steps really trained the weights


def test_state_dicts_load_both_ways():
    original, converted = pair("resnet18")
    fresh_fc = fastconv.convert(torchvision.models.resnet18(weights=None))
    fresh_fc.load_state_dict(original.state_dict())
    fresh_nn = torchvision.models.resnet18(weights=None)
    fresh_nn.load_state_dict(converted.state_dict())
    x = torch.randn(1, 3, 32, 32)
    for m in (original, converted, fresh_fc, fresh_nn):
        m.eval()
    torch.testing.assert_close(fresh_fc(x), original(x), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(fresh_nn(x), converted(x), rtol=1e-3, atol=1e-4)


def test_save_load_whole_converted_model():
    _, converted = pair("mobilenet_v2")
    converted.eval()
    buf = io.BytesIO()
    torch.save(converted, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    x = torch.randn(1, 3, 32, 32)
    assert type(loaded.features[1].conv[0][0]) is fastconv.Conv2d
    torch.testing.assert_close(loaded(x), converted(x))


def test_resnet18_compiles_without_graph_breaks_and_exports():
    _, model = pair("resnet18")
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    program = torch.export.export(model, (x,))
    convs = [n for n in program.graph.nodes if "fastconv.conv2d" in str(n.target)]
    assert len(convs) == 20
    torch.testing.assert_close(program.module()(x), model(x))


def test_resnet18_compiled_training_step_matches_eager():
    _, model = pair("resnet18")
    x, target = torch.randn(2, 3, 64, 64), torch.randint(0, 1000, (2,))

    def step(m):
        m.zero_grad()
        loss = F.cross_entropy(m(x), target)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    model.train()
    eager_loss, eager_grads = step(model)
    loss, grads = step(torch.compile(model, fullgraph=True, backend="aot_eager"))
    torch.testing.assert_close(loss, eager_loss)
    for a, b in zip(grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_cpu_behaves_like_f_conv2d(dtype):
    x = torch.randn(2, 8, 16, 16)
    w = torch.randn(16, 4, 3, 3, requires_grad=True)
    b = torch.randn(16, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype):
        ours = fastconv.conv2d(x, w, b, padding=1, groups=2)
        theirs = F.conv2d(x, w, b, padding=1, groups=2)
    assert ours.dtype == theirs.dtype == dtype
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)
    ours.float().sum().backward()
    assert w.grad.dtype == torch.float32 and b.grad.dtype == torch.float32


def test_autocast_converted_model():
    original, converted = pair("resnet18")
    original.eval()
    converted.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, theirs = converted(x), original(x)
    assert ours.dtype == theirs.dtype
    exact = original.float()(x)
    assert (ours.float() - exact).abs().max() <= 2 * (theirs.float() - exact).abs().max() + 1e-3


def test_mnist_like_example_converges():
    accuracy = load_example("train_mnist_like").train(epochs=2, samples=2000, progress=False)
    assert accuracy > 0.9, accuracy


def test_convert_resnet_example_runs():
    out = run_example("convert_resnet", "--batch", "1", "--size", "64")
    assert "converted 20 convolution layers" in out
    diff = float(out.split("max |difference| of the logits:")[1].split()[0])
    assert diff < 1e-3
    assert "training step" in out and "torch/fastconv" in out
