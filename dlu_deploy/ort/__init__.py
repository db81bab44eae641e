"""ONNX Runtime for dlu-deploy's graphs: `make_session(model)` returns a ready session.

Plugin-mode graphs hold one custom node per DLU / CARAFE / DDF (domain `dlu_deploy`) or mmcv's
`MMCVCARAFE`; those nodes run on the compiled CPU kernels (libdlu_kernels) through
onnxruntime-extensions' Python custom ops, everything else on onnxruntime as usual. Portable
graphs need nothing extra. Why this route, and its limits: docs/kernels.md.
"""

from dlu_deploy.ort.session import PluginSession, make_session

__all__ = ["PluginSession", "make_session"]
