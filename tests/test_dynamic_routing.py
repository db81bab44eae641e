"""DynamicRouting: names, the original eval semantics, and the dense gated form against them.

The oracle is tests/dynamic_routing_original.py, a transcription of the original code that reads
only the state_dict. Layer16 in PyTorch is cheap at 128x128 (about 0.1 s a forward).
"""

from __future__ import annotations

import pytest
import torch

from dlu_deploy.errors import UserError
from dlu_deploy.models.dynamic_routing import (
    SKIP_THRESHOLD,
    Cell,
    DynamicRoutingConfig,
    DynamicRoutingSeg,
    close_gates_,
    named_cells,
)
from dlu_deploy.models.seeded import build_seeded
from tests.dynamic_routing_original import decoder_forward, original_forward

FP32_ATOL = 1e-5


def _model(seed: int = 0, **config: object) -> DynamicRoutingSeg:
    return build_seeded(lambda: DynamicRoutingSeg(DynamicRoutingConfig(**config)), seed)  # type: ignore[arg-type]


def _image(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# ----------------------------------------------------------------------------- names and shapes


def test_layer16_state_dict_matches_the_original_names_and_shapes() -> None:
    sd = DynamicRoutingSeg().state_dict()
    expected = {
        "backbone.stem.stem_1.weight": (64, 3, 3, 3),
        "backbone.stem.stem_2.0.weight": (64, 1, 3, 3),
        "backbone.stem.stem_2.1.weight": (64, 64, 1, 1),
        "backbone.stem.stem_3.1.norm.running_var": (64,),
        "backbone.init_layer.cell_ops._ops.0.op.0.weight": (64, 1, 3, 3),
        "backbone.init_layer.res_down.1.weight": (128, 64, 1, 1),
        "backbone.init_layer.gate_conv_beta.2.weight": (2, 32, 1, 1),  # keep, down
        "backbone.all_cell_list.0.1.gate_conv_beta.2.bias": (3,),  # keep, up, down
        "backbone.all_cell_list.2.3.gate_conv_beta.2.weight": (2, 256, 1, 1),  # keep, up
        "backbone.all_cell_list.5.0.gate_conv_beta.2.weight": (2, 32, 1, 1),  # keep, down
        "backbone.all_cell_list.5.2.cell_ops._ops.0.op.3.weight": (256, 256, 1, 1),
        "backbone.all_cell_list.5.2.res_up.1.weight": (128, 256, 1, 1),
        "backbone.all_cell_list.5.2.res_down.1.norm.weight": (512,),
        "backbone.all_cell_list.15.3.gate_conv_beta.2.weight": (1, 256, 1, 1),  # last layer: keep
        "sem_seg_head.layer_decoder_list.0.weight": (64, 64, 1, 1),
        "sem_seg_head.layer_decoder_list.3.weight": (256, 512, 1, 1),
        "sem_seg_head.predictor.weight": (19, 64, 3, 3),
        "sem_seg_head.predictor.bias": (19,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    # 16 layers of [2, 3, 4, 4, ...] cells = 61 cells, plus init_layer.
    cells = {k.split(".cell_ops")[0] for k in sd if ".cell_ops." in k}
    assert len(cells) == 62
    assert not any(
        k.startswith("backbone.all_cell_list.15.") and (".res_up." in k or ".res_down." in k)
        for k in sd
    )
    assert not any(".res_up." in k for k in sd if k.startswith("backbone.all_cell_list.3.0."))
    assert not any(".res_down." in k for k in sd if k.startswith("backbone.all_cell_list.3.3."))


def test_gate_bias_initialisation_opens_paths_about_90_percent() -> None:
    cell = Cell(16, allow_up=True, allow_down=True, small_gate=False).eval()
    with torch.no_grad():
        cell.gate_logits.weight.zero_()
        g = cell.gates(torch.randn(2, 16, 8, 8))
    assert g.shape == (2, 3, 1, 1)
    assert torch.allclose(g, torch.full_like(g, torch.tanh(torch.tensor(1.5)).item()))


# ------------------------------------------------------------------ original semantics vs oracle


@pytest.mark.parametrize("small_gate", [False, True])
def test_original_form_matches_the_transcribed_original(small_gate: bool) -> None:
    model = _model(small_gate=small_gate)
    x = _image(2, 3, 128, 160)
    with torch.no_grad():
        want = original_forward(model.state_dict(), x, 16, small_gate)
        got = model.forward_original(x)
    assert got.shape == (2, 19, 128, 160)
    assert _max_err(got, want) <= FP32_ATOL


# ----------------------------------------------------------------------- dense form vs original


def test_dense_equals_original_when_no_cell_is_skipped() -> None:
    model = _model(small_gate=True)
    with torch.no_grad():
        for cell in named_cells(model).values():
            cell.gate_logits.weight.mul_(0.01)  # input-dependent gates, but none closes
    x = _image(2, 3, 128, 128, seed=1)
    skipped: list[str] = []
    with torch.no_grad():
        original = model.forward_original(x, skipped)
        dense = model(x)
    assert skipped == []
    assert _max_err(dense, original) <= FP32_ATOL


CLOSED = [
    "init_layer",
    "all_cell_list.3.2",
    "all_cell_list.7.0",
    "all_cell_list.7.1",
    "all_cell_list.12.3",
]


@pytest.mark.parametrize("batch", [1, 2])
def test_dense_equals_original_when_cells_are_closed(batch: int) -> None:
    model = _model(seed=3)
    cells = named_cells(model)
    for name in CLOSED:
        close_gates_(cells[name])
    x = _image(batch, 3, 96, 128, seed=2)
    skipped: list[str] = []
    with torch.no_grad():
        want = original_forward(model.state_dict(), x, 16, False)
        original = model.forward_original(x, skipped)
        dense = model(x)
    # init_layer closed -> its down path is the float 0.0, so all_cell_list.0.1 (fed by nothing
    # else) and all_cell_list.1.2 see float inputs and are skipped too: float propagation.
    assert set(CLOSED) | {"all_cell_list.0.1", "all_cell_list.1.2"} <= set(skipped)
    assert _max_err(original, want) <= FP32_ATOL
    assert _max_err(dense, original) <= FP32_ATOL


def test_dense_equals_original_for_tiny_open_gates_at_batch_1() -> None:
    """0 < sum(g) < 1e-4: the original skips the cell (output X, nothing up or down), and so does
    the dense graph per sample; at batch 1 the two are identical."""
    model = _model(seed=4)
    cell = named_cells(model)["all_cell_list.4.1"]
    with torch.no_grad():
        cell.gate_logits.weight.zero_()
        cell.gate_logits_bias.fill_(2e-5)  # g = tanh(2e-5) per path, sum 6e-5
    x = _image(1, 3, 64, 96, seed=5)
    skipped: list[str] = []
    with torch.no_grad():
        original = model.forward_original(x, skipped)
        dense = model(x)
        want = original_forward(model.state_dict(), x, 16, False)
    assert skipped == ["all_cell_list.4.1"]
    assert _max_err(original, want) <= FP32_ATOL
    assert _max_err(dense, original) <= FP32_ATOL


def _gap_cell() -> tuple[Cell, torch.Tensor]:
    """A cell whose gates are tiny but open (sum 6e-5) for sample 0 and wide open for sample 1.

    The gate branch is made an identity on the first C/2 channels, so the pooled gate feature is
    mean(relu(x)): 0 for the all-negative sample 0, positive for sample 1."""
    c = 8
    cell = build_seeded(lambda: Cell(c, allow_up=True, allow_down=True, small_gate=False), 7)
    with torch.no_grad():
        conv, norm = cell.gate_conv_beta[0], cell.gate_conv_beta[0].norm
        conv.weight.zero_()
        conv.weight[:, : c // 2, 0, 0] = torch.eye(c // 2)
        norm.weight.fill_(1.0)
        norm.bias.zero_()
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)
        cell.gate_logits.weight.fill_(5.0)
        cell.gate_logits_bias.fill_(2e-5)
    x = torch.randn(2, c, 8, 8, generator=torch.Generator().manual_seed(8))
    x[0] = -x[0].abs() - 0.1
    x[1] = x[1].abs()
    return cell, x


def test_mixed_batch_gap_is_bounded_by_the_dropped_gated_terms() -> None:
    """The documented gap: the batch's gate sum is >= 1e-4, so the original computes the cell for
    every sample, and sample 0 (own sum < 1e-4) gets X + g_keep*relu(H), g_up*up, g_down*down,
    whereas the dense graph skips it per sample (X, 0, 0). The difference is exactly those gated
    terms, each at most g_j * max|branch| with sum_j g_j < 1e-4."""
    cell, x = _gap_cell()
    alive = torch.ones(2, 1, 1, 1, dtype=torch.bool)
    with torch.no_grad():
        g = cell.gates(x)
        original = cell.forward_original(x)
        dense = cell.forward_dense(x, alive)
        h = cell.cell_ops(x)
        up_branch = torch.nn.functional.interpolate(cell.res_up(h), scale_factor=2, mode="bilinear")
        down_branch = cell.res_down(h)
    sums = g.sum(dim=(1, 2, 3))
    assert 0 < sums[0] < SKIP_THRESHOLD <= sums[1]
    assert not original.skipped
    assert isinstance(original.keep, torch.Tensor) and isinstance(original.up, torch.Tensor)
    assert (
        isinstance(original.down, torch.Tensor) and dense.up is not None and dense.down is not None
    )
    # Sample 1 (open) is identical in both forms.
    assert _max_err(dense.keep[1], original.keep[1]) == 0.0
    assert _max_err(dense.up[1], original.up[1]) == 0.0
    assert _max_err(dense.down[1], original.down[1]) == 0.0
    # Sample 0: the gap exists and is bounded.
    g0 = g[0].flatten()
    keep_gap = _max_err(dense.keep[0], original.keep[0])
    up_gap = _max_err(dense.up[0], original.up[0])
    down_gap = _max_err(dense.down[0], original.down[0])
    # X + g_keep*relu(H) rounds once more than X: allow one ulp of |X| on top of the bound.
    rounding = float(x[0].abs().max()) * 2**-23
    assert 0 < keep_gap <= float(g0[0] * torch.relu(h[0]).abs().max()) * (1 + 1e-6) + rounding
    assert 0 < up_gap <= float(g0[1] * up_branch[0].abs().max()) * (1 + 1e-6)
    assert 0 < down_gap <= float(g0[2] * down_branch[0].abs().max()) * (1 + 1e-6)
    # Each sample alone (batch 1) is skipped/computed identically by both forms.
    for i in range(2):
        with torch.no_grad():
            alone = cell.forward_original(x[i : i + 1])
        assert isinstance(alone.keep, torch.Tensor)
        assert _max_err(alone.keep, dense.keep[i : i + 1]) == 0.0


def test_mixed_batch_with_exactly_closed_sample_has_no_gap() -> None:
    cell, x = _gap_cell()
    with torch.no_grad():
        cell.gate_logits_bias.fill_(-1.0)  # sample 0: tanh(-1) < 0 -> gates exactly 0
        original = cell.forward_original(x)
        dense = cell.forward_dense(x, torch.ones(2, 1, 1, 1, dtype=torch.bool))
        g = cell.gates(x)
    assert float(g[0].sum()) == 0.0 and float(g[1].sum()) >= SKIP_THRESHOLD
    assert isinstance(original.keep, torch.Tensor) and isinstance(original.up, torch.Tensor)
    assert dense.up is not None
    assert _max_err(dense.keep, original.keep) == 0.0
    assert _max_err(dense.up, original.up) == 0.0


def test_dense_decoder_skips_levels_without_input_like_the_original() -> None:
    model = _model(seed=9)
    feats = [_image(1, 64 * 2**i, 32 // 2**i, 32 // 2**i, seed=i) for i in range(4)]
    alive = [torch.ones(1, 1, 1, 1, dtype=torch.bool) for _ in range(4)]
    alive[3] = ~alive[3]
    with torch.no_grad():
        want = decoder_forward(model.state_dict(), [*feats[:3], 0.0])
        dense = model.sem_seg_head([*feats[:3], torch.zeros_like(feats[3])], alive)
        original = model.sem_seg_head.forward_original([*feats[:3], 0.0])
    assert _max_err(original, want) <= FP32_ATOL
    assert _max_err(dense, want) <= FP32_ATOL


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("shape", "small_gate", "needle"),
    [
        ((1, 3, 100, 128), False, "multiples of 32"),
        ((1, 3, 64, 64), True, "at least 128"),
        ((1, 1, 64, 64), False, "(N, 3, H, W)"),
        ((3, 64, 64), False, "(N, 3, H, W)"),
    ],
)
def test_bad_input_names_the_problem(shape: tuple[int, ...], small_gate: bool, needle: str) -> None:
    model = DynamicRoutingSeg(
        DynamicRoutingConfig(layer_num=3, init_channel=8, small_gate=small_gate)
    ).eval()
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        model(torch.zeros(shape))


def test_original_form_refuses_training_mode() -> None:
    model = DynamicRoutingSeg(DynamicRoutingConfig(layer_num=3, init_channel=8))
    with pytest.raises(UserError, match="eval"):
        model.forward_original(torch.zeros(1, 3, 64, 64))


def test_config_rejects_too_few_layers() -> None:
    with pytest.raises(UserError, match="layer_num"):
        DynamicRoutingConfig(layer_num=2)
