"""Reproducible stand-in weights for the samples and tests, where no trained checkpoint is at hand.

A freshly built model has identity BatchNorm statistics, which hides wiring mistakes (a missing
BN, a swapped mean and variance). `build_seeded` builds under a fixed seed and then gives every
BatchNorm the spread of a trained network, so an exported graph is checked on non-trivial
arithmetic. Nothing here changes the architecture or the state_dict names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

ModelT = TypeVar("ModelT", bound=nn.Module)


def randomize_batchnorms_(model: nn.Module, generator: torch.Generator) -> None:
    """Trained-looking BN: weight, var in [0.5, 1.5]; bias, mean ~ N(0, 0.1)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                c = module.num_features
                if module.affine:
                    module.weight.copy_(0.5 + torch.rand(c, generator=generator))
                    module.bias.copy_(0.1 * torch.randn(c, generator=generator))
                if module.running_mean is not None and module.running_var is not None:
                    module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                    module.running_var.copy_(0.5 + torch.rand(c, generator=generator))


def build_seeded(builder: Callable[[], ModelT], seed: int) -> ModelT:
    """builder() under torch.manual_seed(seed) (global RNG restored), BN randomised, eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = builder()
    randomize_batchnorms_(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()
