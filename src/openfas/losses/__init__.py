"""Loss functions, each citing the equation it implements."""

from openfas.losses.depth import contrast_depth_loss, neighbour_difference_kernels, pixelwise_loss
from openfas.losses.triplet import BatchHardTripletLoss, batch_hard_triplet_loss

__all__ = ["BatchHardTripletLoss", "batch_hard_triplet_loss", "contrast_depth_loss", "neighbour_difference_kernels",
           "pixelwise_loss"]
