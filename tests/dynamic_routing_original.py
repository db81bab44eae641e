"""The original DynamicRouting eval forward, transcribed for the tests as an independent oracle.

Follows the structure of dl_lib/modeling/dynamic_arch/{dynamic_cell,dynamic_backbone}.py and
meta_arch/dynamic4seg.py (Megvii-BaseDetection/DynamicRouting): result lists
`[[up], [keep], [down]]`, the `[dim_up, dim_keep, dim_down]` aggregation flags, `sum()` over cell
inputs, Python floats for skipped paths. It reads nothing but a state_dict (functional convs and
batch norms), so it also checks the model's parameter names and wiring.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
StateDict = dict[str, Tensor]


def conv(
    sd: StateDict, name: str, x: Tensor, stride: int = 1, padding: int = 0, groups: int = 1
) -> Tensor:
    return F.conv2d(x, sd[name + ".weight"], sd.get(name + ".bias"), stride, padding, 1, groups)


def conv_bn(
    sd: StateDict, name: str, x: Tensor, stride: int = 1, padding: int = 0, relu: bool = True
) -> Tensor:
    """dl_lib Conv2d(norm=BN, activation=ReLU or None)."""
    y = conv(sd, name, x, stride, padding)
    y = F.batch_norm(
        y,
        sd[name + ".norm.running_mean"],
        sd[name + ".norm.running_var"],
        sd[name + ".norm.weight"],
        sd[name + ".norm.bias"],
        training=False,
        eps=1e-5,
    )
    return F.relu(y) if relu else y


def depthwise(sd: StateDict, name: str, x: Tensor, stride: int = 1) -> Tensor:
    return conv(sd, name, x, stride, 1, groups=x.shape[1])


def interpolate(x: Tensor, factor: float) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def soft_gate(x: Tensor) -> Tensor:
    return F.relu(torch.tanh(x))


def cell_forward(
    sd: StateDict, p: str, h_l1: Any, allow_up: bool, allow_down: bool, small_gate: bool
) -> list:
    """Cell.forward in eval mode with CAL_FLOPS off; p is the cell's key prefix."""
    drop_cell = False
    if not isinstance(h_l1, float):
        h_l1_gate = interpolate(h_l1, 0.25) if small_gate else h_l1
        g = conv_bn(sd, p + "gate_conv_beta.0", h_l1_gate)
        g = F.adaptive_avg_pool2d(g, (1, 1))
        gate_weights_beta = soft_gate(conv(sd, p + "gate_conv_beta.2", g))
    else:
        drop_cell = True
    if not drop_cell:
        drop_cell = bool(gate_weights_beta.sum() < 0.0001)
    if drop_cell:
        return [[0.0], [h_l1], [0.0]]

    op = p + "cell_ops._ops.0.op."
    sep = depthwise(sd, op + "0", h_l1)
    sep = conv_bn(sd, op + "1", sep)
    sep = depthwise(sd, op + "2", sep)
    sep = conv_bn(sd, op + "3", sep, relu=False)
    h_l = sum([sep, h_l1])  # Mixed_OP: sum(op(x) for op in [sep_conv_3x3, skip_connect])

    h_l_keep = F.relu(h_l)
    gate_weights_beta_keep = gate_weights_beta[:, 0].unsqueeze(-1)
    gate_mask = (gate_weights_beta.sum(dim=1, keepdim=True) < 0.0001).float()
    result_list: list[list[Any]] = [[], [gate_mask * h_l1 + gate_weights_beta_keep * h_l_keep], []]
    if allow_up:
        h_l_up = conv_bn(sd, p + "res_up.1", F.relu(h_l))
        h_l_up = interpolate(h_l_up, 2)
        result_list[0].append(h_l_up * gate_weights_beta[:, 1].unsqueeze(-1))
    if allow_down:
        h_l_down = conv_bn(sd, p + "res_down.1", F.relu(h_l), stride=2)
        result_list[2].append(h_l_down * gate_weights_beta[:, -1].unsqueeze(-1))
    return result_list


def stem_forward(sd: StateDict, x: Tensor) -> Tensor:
    p = "backbone.stem."
    x = conv_bn(sd, p + "stem_1", x, stride=2, padding=0)
    x = conv_bn(sd, p + "stem_2.1", depthwise(sd, p + "stem_2.0", x))
    return conv_bn(sd, p + "stem_3.1", depthwise(sd, p + "stem_3.0", x, stride=2))


def backbone_forward(sd: StateDict, x: Tensor, layer_num: int, small_gate: bool) -> list[Any]:
    """DynamicNetwork.forward: returns [layer_0, ..., layer_3] (tensors or floats)."""
    cell_num_list = ([2, 3, 4] + [4 for _ in range(13 + 17)])[:layer_num]
    cell_types = []
    for layer_index in range(len(cell_num_list)):
        layer_cell_type = []
        for cell_index in range(cell_num_list[layer_index]):
            dim_up, dim_down, dim_keep = False, False, True
            if cell_index > 0:
                dim_up = True
            if (cell_index < cell_num_list[layer_index] - 1) and layer_index > 2:  # noqa: SIM114
                dim_down = True
            elif (cell_index < cell_num_list[layer_index] - 2) and layer_index <= 2:
                dim_down = True
            if layer_index <= 2 and cell_index == cell_num_list[layer_index] - 1:
                dim_keep = False
            layer_cell_type.append([dim_up, dim_keep, dim_down])
        cell_types.append(layer_cell_type)

    h_l1 = stem_forward(sd, x)
    prev_out_list = [cell_forward(sd, "backbone.init_layer.", h_l1, False, True, small_gate)]
    for layer_index in range(len(cell_num_list)):
        layer_input = []
        for cell_index in range(len(cell_types[layer_index])):
            cell_input = []
            if cell_types[layer_index][cell_index][0]:
                cell_input.append(prev_out_list[cell_index - 1][2][0])
            if cell_types[layer_index][cell_index][1]:
                cell_input.append(prev_out_list[cell_index][1][0])
            if cell_types[layer_index][cell_index][2]:
                cell_input.append(prev_out_list[cell_index + 1][0][0])
            layer_input.append(sum(cell_input))
        layer_output = []
        for cell_index in range(len(cell_types[layer_index])):
            allow_up = not (cell_index == 0 or layer_index == layer_num - 1)
            allow_down = not (cell_index == 3 or layer_index == layer_num - 1)
            prefix = f"backbone.all_cell_list.{layer_index}.{cell_index}."
            layer_output.append(
                cell_forward(sd, prefix, layer_input[cell_index], allow_up, allow_down, small_gate)
            )
        prev_out_list = layer_output
    return [prev_out_list[i][1][0] for i in range(len(prev_out_list))]


def decoder_forward(sd: StateDict, features: list[Any]) -> Tensor:
    """SemSegDecoderHead.forward in eval mode (with PR #30's skip of float features)."""
    pred, pred_output = None, None
    for _index in range(4):
        out_index = 4 - _index - 1
        out_feat = features[out_index]
        if isinstance(out_feat, float):
            continue
        if out_index <= 2 and pred is not None:
            out_feat = pred + out_feat
        pred = conv_bn(sd, f"sem_seg_head.layer_decoder_list.{out_index}", out_feat)
        if out_index > 0:
            pred = interpolate(pred, 2)
        else:
            pred_output = pred
    pred_output = conv(sd, "sem_seg_head.predictor", pred_output, padding=1)
    return interpolate(pred_output, 4)


def original_forward(
    sd: StateDict, x: Tensor, layer_num: int = 16, small_gate: bool = False
) -> Tensor:
    return decoder_forward(sd, backbone_forward(sd, x, layer_num, small_gate))
