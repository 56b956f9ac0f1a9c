"""Model packages and where they live.

The checksummed skops/ONNX package, the create-only model stores (a folder or S3), and the
copy to EFS (the ``efs-sync`` Lambda and its local stand-in) that serving pods read.
"""

from slipway._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LocalModelStore": "store",
        "MANIFEST": "store",
        "MODEL_FILE": "package",
        "ModelStore": "store",
        "ONNX_FILE": "onnx_model",
        "ONNX_INPUT": "onnx_model",
        "ONNX_TOLERANCE": "onnx_model",
        "OnnxInput": "onnx_model",
        "onnx_feed": "onnx_model",
        "run_onnx": "onnx_model",
        "target_statistics": "statistics",
        "training_statistics": "statistics",
        "PackageInfo": "package",
        "TRUSTED_TYPES": "package",
        "build_package": "package",
        "load_package": "package",
        "loads_model": "package",
        "open_model_store": "store",
        "open_session": "onnx_model",
        "parse_manifest": "package",
        "predict_onnx": "onnx_model",
        "publish_champion": "efs",
        "read_champion_marker": "efs",
        "sync_from_store": "efs",
        "verify_file": "package",
        "write_champion_marker": "efs",
    },
)
