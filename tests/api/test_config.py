"""fastconv.cpu_algorithm / set_cpu_algorithm: every documented value is accepted by the
Python and the C++ setter and reads back, forcing a family selects it, and bad values
raise without changing the setting."""

import pytest
import torch

import fastconv
from fastconv.config import CPU_ALGORITHMS

from ..helpers import family


def test_cpu_algorithm_setting_is_checked_and_restored():
    assert fastconv.get_cpu_algorithm() == "auto"
    with fastconv.cpu_algorithm("fft"):
        assert fastconv.get_cpu_algorithm() == "fft"
    assert fastconv.get_cpu_algorithm() == "auto"
    with pytest.raises(ValueError, match="algorithm must be one of"):
        fastconv.set_cpu_algorithm("im2col")
    with pytest.raises(ValueError, match="algorithm must be one of"):  # the C++ setter too
        fastconv.config._C.set_cpu_algorithm("im2col")
    assert fastconv.get_cpu_algorithm() == "auto"


@pytest.mark.parametrize("name", CPU_ALGORITHMS)
def test_every_documented_value_is_accepted_by_both_setters(name):
    expected = "plain" if name == "direct" else name  # "direct" is the old name of "plain"
    with fastconv.cpu_algorithm(name):
        assert fastconv.get_cpu_algorithm() == expected
    fastconv.config._C.set_cpu_algorithm(name)
    try:
        assert fastconv.get_cpu_algorithm() == expected
    finally:
        fastconv.set_cpu_algorithm("auto")


@pytest.mark.parametrize(
    "name, cin, groups, k",
    [
        ("rows", 8, 8, 3),
        ("blocked", 16, 16, 3),
        ("dense", 8, 1, 3),
        ("winograd", 8, 1, 3),
        ("fft", 1, 1, 3),
        ("grouped", 16, 8, 3),
        ("gemv", 8, 1, 1),
    ],
)
def test_forcing_a_family_selects_it(name, cin, groups, k):
    x, w = torch.randn(1, cin, 12, 12), torch.randn(cin, cin // groups, k, k)
    with fastconv.cpu_algorithm(name):
        assert family(x, w, 1, 1, 1, groups) == name
