"""The project's ops as torch custom ops: `torch.ops.dlu_deploy.{dlu,carafe,ddf}`.

They run in eager PyTorch, under torch.compile and in torch.export (fake implementations give
the output shapes); plugin-mode export maps each one to a single ONNX node of the same name.
"""

from dlu_deploy.ops.library import carafe, ddf, dlu

__all__ = ["carafe", "ddf", "dlu"]
