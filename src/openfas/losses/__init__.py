"""Loss functions, each citing the equation it implements."""

from openfas.losses.depth import contrast_depth_loss, neighbour_difference_kernels, pixelwise_loss

__all__ = ["contrast_depth_loss", "neighbour_difference_kernels", "pixelwise_loss"]
