"""dlu-deploy: deploy models that upsample with DLU, CARAFE, DySample or DDF.

Importing the package is cheap and pulls in neither torch nor TensorRT, so the runtime
(`dlu_deploy.runtime`) stays usable on edge devices that have neither installed.
"""

__version__ = "0.1.0"

# ONNX domain of the custom nodes that plugin-mode exports emit; op_type == TensorRT plugin name.
ONNX_DOMAIN = "dlu_deploy"
PLUGIN_VERSION = "1"
