"""Training algorithms. Each file registers its method with ``@register_method``."""

from openfas.methods import anrl, binary, distill, ldcnet, pixelwise, recognition, rfmeta  # noqa: F401
from openfas.methods.base import (
    Method,
    MethodParams,
    Stage,
    TrainerContext,
    get_method,
    list_methods,
    register_method,
)

__all__ = ["Method", "MethodParams", "Stage", "TrainerContext", "get_method", "list_methods", "register_method"]
