"""Operators: central difference and learnable descriptive convolution, spatial attention and deployment folding."""

from openfas.ops.attention import SpatialAttention
from openfas.ops.cdc import CDConv2d, TwoConvCDC, cdc_kernel
from openfas.ops.fuse import fuse_model
from openfas.ops.ldc import LDConv2d, ldc_kernel

__all__ = ["CDConv2d", "LDConv2d", "SpatialAttention", "TwoConvCDC", "cdc_kernel", "fuse_model", "ldc_kernel"]
