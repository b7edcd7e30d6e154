"""Deployment: :class:`Predictor` (images/videos → liveness scores), ONNX export and the HTTP service.

Names are imported lazily so that ``import openfas.deploy`` stays light.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Predictor": "openfas.deploy.predictor",
    "ImageLimits": "openfas.deploy.uploads",
    "ImageInputError": "openfas.deploy.uploads",
    "ImageResult": "openfas.deploy.predictor",
    "FaceResult": "openfas.deploy.predictor",
    "VideoResult": "openfas.deploy.predictor",
    "export_onnx": "openfas.deploy.export",
    "ExportReport": "openfas.deploy.export",
    "ExportError": "openfas.deploy.export",
    "create_app": "openfas.deploy.server",
    "ServeSettings": "openfas.deploy.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'openfas.deploy' has no attribute {name!r}")


__all__ = sorted(_LAZY)
