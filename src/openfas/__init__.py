"""openfas: face anti-spoofing and masked-face recognition.

Conventions used everywhere in openfas:

* label ``1`` = live (bona fide), label ``0`` = spoof (presentation attack);
* scores: higher = more live;
* attack types are lower-case strings: ``"live"``, ``"print"``, ``"replay"``, ``"mask"``, ``"other"``.
"""

from openfas.models._registry import create_model, list_models, register_model

__version__ = "0.1.0"
LIVE = 1
SPOOF = 0

__all__ = ["LIVE", "SPOOF", "Predictor", "__version__", "create_model", "list_models", "register_model"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: the predictor pulls in OpenCV and albumentations
    if name == "Predictor":
        from openfas.deploy.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'openfas' has no attribute {name!r}")
