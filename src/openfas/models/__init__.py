"""Model architectures. Each file registers its variants with ``@register_model``."""

# Importing a family's module registers its models.
from openfas.models import anrl, cdcn, iresnet, lbp, ldcnet, minifasnet, pixelnet, rfmeta  # noqa: F401
from openfas.models._registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
