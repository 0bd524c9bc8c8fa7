import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# "default" keeps `make test` quick; `make fuzz` runs the "fuzz" profile (10,000 geometries).
# The default profile is derandomized so CI is reproducible; `make fuzz` explores anew.
settings.register_profile(
    "default",
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
