"""Model architectures. Each file registers its variants with ``@register_model``."""

from openfas.models import pixelnet  # noqa: F401  (stand-in pixel-supervised model)
from openfas.models import anrl, rfmeta  # noqa: F401  (meta-learning DG methods)
from openfas.models._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
