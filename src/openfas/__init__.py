"""openfas: face anti-spoofing and masked-face recognition.

Conventions used everywhere in openfas:

* label ``1`` = live (bona fide), label ``0`` = spoof (presentation attack);
* scores: higher = more live;
* attack types are lower-case strings: ``"live"``, ``"print"``, ``"replay"``, ``"mask"``, ``"other"``.
"""

import importlib
from typing import Any

from openfas._version import __version__
from openfas.conventions import LIVE, SPOOF

# Public names imported on first use: `import openfas` (and so `openfas --help`) stays free of torch and OpenCV.
_LAZY = {"create_model": "openfas.models", "list_models": "openfas.models", "register_model": "openfas.models",
         "Predictor": "openfas.deploy.predictor", "Recognizer": "openfas.methods.recognizer"}

__all__ = ["LIVE", "SPOOF", "Predictor", "Recognizer", "__version__", "create_model", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'openfas' has no attribute {name!r}")
