"""Hyper-parameter bookkeeping for architecture builders: inferred, assumed, or given.

`inferred` values come from weight shapes, `assumed` ones are defaults for what weights cannot
show (a dilation, a stride), `given` ones are the user's overrides, which always win.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch

from dlu_deploy.checkpoints.errors import HyperParameterError, StateDictMismatchError
from dlu_deploy.reference._checks import MAX_KERNEL_SIZE, MAX_SCALE

T = TypeVar("T")
ODD_KERNEL_SIZES = tuple(range(1, MAX_KERNEL_SIZE + 1, 2))
SCALES = tuple(range(1, MAX_SCALE + 1))


class HyperParameters:
    """Collects where each hyper-parameter of a model came from."""

    def __init__(self, overrides: Mapping[str, object]) -> None:
        self.given: dict[str, object] = dict(overrides)
        self.inferred: dict[str, object] = {}
        self.assumed: dict[str, object] = {}
        self.notes: list[str] = []

    def infer(self, name: str, value: T) -> T:
        """A value read from the weights; an override of it is checked against them."""
        if name in self.given and self.given[name] != value:
            raise HyperParameterError(
                f"--{name.replace('_', '-')} {self.given[name]!r} contradicts the weights, which "
                f"give {name}={value!r}.",
                f"Drop --{name.replace('_', '-')} (it is read from the checkpoint).",
            )
        if name not in self.given:
            self.inferred[name] = value
        return value

    def assume(self, name: str, default: T, why: str) -> T:
        """A value the weights cannot show: the override, else the default (noted)."""
        if name in self.given:
            return self.given[name]  # type: ignore[return-value]
        self.assumed[name] = default
        self.notes.append(
            f"{name}={default!r} assumed: {why} (override with --{name.replace('_', '-')})"
        )
        return default

    def configured(self, name: str, value: T | None, default: T, where: str) -> T:
        """A setting the weights cannot show: the override, else the value `where` (a saved
        config) gives (reported as inferred), else the default (assumed)."""
        if name in self.given:
            return self.given[name]  # type: ignore[return-value]
        if value is not None:
            self.inferred[name] = value
            return value
        self.assumed[name] = default
        self.notes.append(
            f"{name}={default!r} assumed: {where} does not set it (override with "
            f"--{name.replace('_', '-')})"
        )
        return default

    def choose(
        self, names: Sequence[str], candidates: Iterable[dict[str, Any]], what: str
    ) -> dict[str, Any]:
        """Pick the first candidate agreeing with the overrides; note the alternatives.

        `candidates` are complete assignments of `names` consistent with the weights, best first.
        """
        agreeing = [
            c for c in candidates if all(c[n] == self.given[n] for n in names if n in self.given)
        ]
        if not agreeing:
            given = ", ".join(
                f"--{n.replace('_', '-')} {self.given[n]!r}" for n in names if n in self.given
            )
            raise HyperParameterError(
                f"No {', '.join(names)} fit {what}"
                + (f" together with {given}." if given else "."),
                "Check the overrides against the checkpoint, or that the checkpoint belongs to "
                "this architecture.",
            )
        chosen = agreeing[0]
        for name in names:
            if name not in self.given:
                self.inferred[name] = chosen[name]
        if len(agreeing) > 1:
            others = "; ".join(", ".join(f"{n}={c[n]}" for n in names) for c in agreeing[1:4])
            flags = " / ".join(f"--{n.replace('_', '-')}" for n in names if n not in self.given)
            self.notes.append(
                f"{what} also fit {others}{'; ...' if len(agreeing) > 4 else ''}; chose "
                + ", ".join(f"{n}={chosen[n]}" for n in names)
                + (f" (pick another with {flags})" if flags else "")
            )
        return chosen


def weight_shape(
    state: Mapping[str, torch.Tensor], key: str, ndim: int, meaning: str
) -> tuple[int, ...]:
    """The shape of a required weight, with a clear error when it is absent or of wrong rank."""
    tensor = state.get(key)
    if tensor is None:
        raise StateDictMismatchError(
            f"The checkpoint has no '{key}' ({meaning}).",
            "Check that the file is a complete checkpoint of this architecture (see the key list "
            "with --verbose).",
        )
    if tensor.dim() != ndim:
        raise StateDictMismatchError(
            f"'{key}' has shape {tuple(tensor.shape)}, expected {ndim} dimensions ({meaning}).",
            "The checkpoint does not belong to this architecture, or was modified; re-export it "
            "from the training code.",
        )
    return tuple(tensor.shape)


def exact_root(value: int, power: int = 2) -> int | None:
    """The integer r with r**power == value, else None."""
    root = round(value ** (1.0 / power))
    for candidate in (root - 1, root, root + 1):
        if candidate >= 1 and candidate**power == value:
            return candidate
    return None


def dlu_candidates(
    channels: int, kernel_space_channels: int, offset_channels: int
) -> list[dict[str, int]]:
    """(up_kernel, up_group, scale) with G*k^2 kernel-space and G*2*s^2 offset channels, G | C.

    Best first: the fewest groups (1 in every published model).
    """
    found = []
    for group in range(1, channels + 1):
        if channels % group or kernel_space_channels % group or offset_channels % (2 * group):
            continue
        kernel = exact_root(kernel_space_channels // group)
        scale = exact_root(offset_channels // (2 * group))
        if kernel in ODD_KERNEL_SIZES and scale in SCALES:
            found.append({"up_kernel": kernel, "up_group": group, "scale": scale})
    return found


def carafe_candidates(channels: int, encoder_channels: int) -> list[dict[str, int]]:
    """(up_kernel, up_group, scale) with G*k^2*s^2 content-encoder channels, G | C.

    Best first: one group, scale 2, kernel 5 (mmcv's defaults and the FPN setting).
    """
    found = []
    for group, kernel, scale in itertools.product(range(1, channels + 1), ODD_KERNEL_SIZES, SCALES):
        if channels % group == 0 and group * kernel * kernel * scale * scale == encoder_channels:
            found.append({"up_kernel": kernel, "up_group": group, "scale": scale})
    return sorted(
        found,
        key=lambda c: (
            c["up_group"] != 1,
            c["scale"] != 2,
            c["up_kernel"] != 5,
            c["up_group"],
            c["scale"],
        ),
    )
