"""DynamicRouting (Layer16) end to end: a dl_lib checkpoint -> the dense gated ONNX graph ->
validation in onnxruntime against the PyTorch model and against the original's eval semantics.

    python samples/dynamic_routing/run.py [--small-gate] [--small] [--out DIR]

The real checkpoints are on Google Drive, which this sample cannot fetch: it writes a seeded
stand-in in dl_lib's format ({"model": state_dict, "iteration": ...}) with a few cells closed,
the state a budget-constrained training leaves them in. See README.md next to this file for
the dense form, the remaining semantic gap and what real compute skipping would need.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common

from dlu_deploy.models.dynamic_routing import (
    DynamicRoutingConfig,
    DynamicRoutingSeg,
    close_gates_,
    named_cells,
)
from dlu_deploy.models.seeded import build_seeded
from dlu_deploy.validate import OrtBackend

FP32_ATOL = 1e-4  # whole exported graph vs PyTorch (docs/ops.md)
# Scale of the stand-in gate logits' weights: the gates then vary with the input around
# tanh(1.5) instead of saturating, as in a trained network.
GATE_WEIGHT_SCALE = 0.05


def closed_cells(layers: int) -> list[str]:
    """Cells to close: the newest stride-16 cell of layer 1 (its down path is the only input of
    layer 2's stride-32 cell, which the original then skips too), a stride-4 cell mid-way and a
    stride-8 cell of the last layer."""
    return ["all_cell_list.1.2", f"all_cell_list.{layers // 2}.0", f"all_cell_list.{layers - 1}.1"]


def make_checkpoint(config: DynamicRoutingConfig, seed: int, path: Path) -> list[str]:
    model = build_seeded(lambda: DynamicRoutingSeg(config), seed)
    cells = named_cells(model)
    closed = closed_cells(config.layer_num)
    with torch.no_grad():
        for cell in cells.values():
            cell.gate_logits.weight.mul_(GATE_WEIGHT_SCALE)
        for name in closed:
            close_gates_(cells[name])
    common.save_checkpoint({"model": model.state_dict(), "iteration": 0}, path)
    console = common.console
    console.print(
        f"Layer{config.layer_num}, {len(cells)} cells (init_layer included), "
        f"SMALL_GATE={config.small_gate}; closed: {', '.join(closed)}"
    )
    return closed


def main(argv: list[str] | None = None) -> int:
    p = common.parser("dynamic_routing", __doc__.split("\n")[0])
    p.add_argument("--small-gate", action="store_true", help="SMALL_GATE (Dynamic-A/B/C configs)")
    p.add_argument("--layers", type=int, help="LAYER_NUM (default 16; 4 with --small)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size (x32)")
    args = p.parse_args(argv)
    console = common.console
    layers = args.layers or (4 if args.small else 16)
    height, width = args.size or ((128, 128) if args.small else (512, 1024))
    config = DynamicRoutingConfig(layer_num=layers, small_gate=args.small_gate)
    overrides = {"small_gate": 1} if args.small_gate else {}
    out: Path = args.out

    common.heading("1. Checkpoint (dl_lib format, seeded stand-in weights)")
    checkpoint = out / f"dynamic_routing_layer{layers}.pth"
    closed = make_checkpoint(config, args.seed, checkpoint)

    common.heading("2. Load with the toolkit")
    loaded = common.load(checkpoint, overrides)
    model = loaded.model
    assert isinstance(model, DynamicRoutingSeg)

    common.heading("3. Original eval semantics vs the dense form (PyTorch)")
    image = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(args.seed))
    skipped: list[str] = []
    with torch.no_grad():
        original = model.forward_original(image, skipped)
        dense = model(image)
    torch_gap = float((dense - original).abs().max())
    console.print(f"cells the original skips for this image: {', '.join(skipped) or 'none'}")
    by_inputs = [c for c in skipped if c not in closed]
    console.print(f"  closed by their gates: {', '.join(c for c in skipped if c in closed)}")
    console.print(f"  skipped because every input was skipped: {', '.join(by_inputs) or 'none'}")
    console.print(f"dense vs original, batch 1: max |diff| = {torch_gap:.3g}")

    common.heading("4. Export (dense gated graph, standard ONNX ops only)")
    onnx_path = out / f"dynamic_routing_layer{layers}.onnx"
    shape = (1, 3, height, width)
    common.export(loaded, onnx_path, "portable", input_shapes=[shape])
    ops = Counter(node.op_type for node in onnx.load(onnx_path).graph.node)
    console.print(
        "plugin mode would be the same graph: DynamicRouting has no DLU/CARAFE/DDF node.\n"
        f"{sum(ops.values())} nodes; skip rule: Where x{ops['Where']}, Less x{ops['Less']}, "
        f"ReduceSum x{ops['ReduceSum']}, Or x{ops['Or']}, Not x{ops['Not']}; "
        f"gates: Tanh x{ops['Tanh']}; Conv x{ops['Conv']}, Resize x{ops['Resize']}"
    )

    common.heading("5. Validate in onnxruntime (CPU)")
    sizes = [shape, (2, 3, height, width), (1, 3, 2 * height, width)]
    report = common.validate_onnx(
        loaded, onnx_path, checkpoint, [{"image": s} for s in sizes], args.threads
    )
    ort_out = OrtBackend(onnx_path, threads=args.threads).run({"image": image.numpy()})["logits"]
    original_gap = float(np.abs(ort_out - original.numpy()).max())
    console.print(
        f"onnxruntime vs the original's eval forward (batch 1, {len(skipped)} cells skipped): "
        f"max |diff| = {original_gap:.3g} (limit {FP32_ATOL:g})"
    )

    note = (
        "The dense graph runs every cell; see samples/dynamic_routing/README.md for what real "
        "compute skipping in TensorRT would need."
    )
    if args.small_gate:
        note += (
            "\nSMALL_GATE is not stored in the weights: dlu-deploy validate rebuilds the model "
            "with the loader's default (SMALL_GATE off) and cannot be told otherwise yet."
        )
    commands = [common.export_command(checkpoint, onnx_path, "portable", shape, overrides)]
    commands += common.gpu_commands(
        checkpoint,
        onnx_path,
        {"image": shape},
        {"image": shape},
        {"image": (2, 3, 2 * height, 2 * width)},
        plugins=False,
    )
    common.print_gpu_commands(commands, note)
    ok = common.finish([report])
    if max(torch_gap, original_gap) > FP32_ATOL:
        console.print("[bold red]FAILED[/]: the exported graph departs from the original semantics")
        return 1
    return ok


if __name__ == "__main__":
    sys.exit(main())
