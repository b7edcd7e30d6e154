"""Fourier-spectrum auxiliary supervision (the "FT" branch of Silent-Face-Anti-Spoofing, Minivision 2020).

Recaptured faces (prints, screens) carry their medium's periodic texture and lose high frequencies; the log
amplitude spectrum of the face crop shows both. An auxiliary head regressing a small version of that spectrum
makes the backbone attend to them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fourier_spectrum_target(images: torch.Tensor, size: int | tuple[int, int], mean: float = 0.5,
                            std: float = 0.5) -> torch.Tensor:
    """B×3×H×W normalised crops (``x = (p/255 − mean)/std``) → B×h×w targets in [0, 1].

    Per image: gray ``g`` = mean of the three channels of ``p/255``; ``A = log(1 + |fftshift(FFT2(g))|)``
    (zero frequency at the centre); ``A`` average-pooled to ``size``; then min-max scaled to [0, 1]
    (``(A − min) / (max − min)``, 0 when flat).
    """
    gray = (images.float() * std + mean).mean(1)
    amp = torch.log1p(torch.fft.fftshift(torch.fft.fft2(gray), dim=(-2, -1)).abs())
    small = F.adaptive_avg_pool2d(amp.unsqueeze(1), size).squeeze(1)
    lo = small.flatten(1).min(1).values.view(-1, 1, 1)
    hi = small.flatten(1).max(1).values.view(-1, 1, 1)
    return torch.where(hi > lo, (small - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(small))


def spectrum_loss(pred: torch.Tensor, images: torch.Tensor, mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """MSE between a B×h×w predicted map and :func:`fourier_spectrum_target` of the input crops."""
    h, w = pred.shape[-2:]
    target = fourier_spectrum_target(images, (h, w), mean, std)
    return F.mse_loss(pred.float(), target)
