"""fastconv.Conv2d (a drop-in nn.Conv2d), convert(model), and the textbook's Conv2D."""

import torch
import torch.nn.functional as F
from torch import nn

from .functional import conv2d, corr2d


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward runs fastconv.

    Same constructor, parameters, ``state_dict``, ``repr`` and ``padding_mode``s ('zeros',
    'reflect', 'replicate', 'circular'); only ``_conv_forward`` differs, so state dicts load
    both ways between the two classes."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv2d(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def convert(model: nn.Module) -> nn.Module:
    """Makes every ``nn.Conv2d`` in ``model`` (the model itself included) run fastconv, in
    place, and returns the model. Parameters, buffers, hooks and optimizer references are
    kept: each layer keeps its identity and only changes class. Subclasses of nn.Conv2d are
    left alone, since they may override forward."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"fastconv.convert: model must be an nn.Module, got {type(model).__name__}")
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = Conv2d
    return model


class Conv2D(nn.Module):
    """The textbook's layer: ``corr2d(x, weight) + bias`` with a 2-D kernel."""

    def __init__(self, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return corr2d(x, self.weight) + self.bias
