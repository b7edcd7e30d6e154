"""Operators: central difference convolution, spatial attention and deployment folding."""

from openfas.ops.attention import SpatialAttention
from openfas.ops.cdc import CDConv2d, TwoConvCDC, cdc_kernel
from openfas.ops.fuse import fuse_model

__all__ = ["CDConv2d", "SpatialAttention", "TwoConvCDC", "cdc_kernel", "fuse_model"]
