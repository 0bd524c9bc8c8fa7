"""fastconv.Conv2d as a drop-in nn.Conv2d, and convert(model)."""

import copy
import pickle

import pytest
import torch
from torch import nn

import fastconv


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_module_matches_nn(padding_mode, padding):
    kwargs = dict(
        kernel_size=3, padding=padding, padding_mode=padding_mode, groups=2, dtype=torch.float64
    )
    ours = fastconv.Conv2d(4, 6, **kwargs)
    theirs = nn.Conv2d(4, 6, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    ours(x).sum().backward()
    theirs(x).sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)


def test_state_dict_loads_both_ways_and_repr_matches():
    a = fastconv.Conv2d(3, 8, 5, stride=2, bias=False)
    b = nn.Conv2d(3, 8, 5, stride=2, bias=False)
    b.load_state_dict(a.state_dict())
    a.load_state_dict(nn.Conv2d(3, 8, 5, stride=2, bias=False).state_dict())
    assert set(a.state_dict()) == set(b.state_dict()) == {"weight"}
    assert repr(a) == repr(b)


def test_unbatched_input():
    m = fastconv.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(2, 7, 7)
    ref = nn.Conv2d(2, 3, 3, padding=1)
    ref.load_state_dict(m.state_dict())
    torch.testing.assert_close(m(x), ref(x))


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU()),
            nn.ModuleDict({"proj": nn.Conv2d(8, 4, 1)}),
        )
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.blocks[0](self.stem(x))
        x = self.blocks[1]["proj"](x)
        return self.head(x.mean((2, 3)))


def test_convert_nested_model_in_place():
    torch.manual_seed(0)
    model = Nested()
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    params_before = [id(p) for p in model.parameters()]
    assert fastconv.convert(model) is model
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(type(m) is fastconv.Conv2d for m in convs)
    assert [id(p) for p in model.parameters()] == params_before  # optimizer still valid
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(model(x), reference(x))
    # One training step changes the converted model exactly like the original.
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for m, opt in ((model, optimizer), (reference, ref_opt)):
        opt.zero_grad()
        m(x).square().sum().backward()
        opt.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)


def test_convert_root_conv_and_leaves_subclasses_alone():
    class Custom(nn.Conv2d):
        pass

    root = fastconv.convert(nn.Conv2d(1, 1, 3))
    assert type(root) is fastconv.Conv2d
    custom = Custom(1, 1, 3)
    assert type(fastconv.convert(custom)) is Custom
    with pytest.raises(TypeError, match="model"):
        fastconv.convert("not a model")


def test_pickle_deepcopy_and_save(tmp_path):
    m = fastconv.Conv2d(2, 4, 3)
    x = torch.randn(1, 2, 6, 6)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert type(clone) is fastconv.Conv2d
        torch.testing.assert_close(clone(x), m(x))
    path = tmp_path / "m.pt"
    torch.save(m, path)
    loaded = torch.load(path, weights_only=False)
    torch.testing.assert_close(loaded(x), m(x))
