"""Masked-face recognition: mask synthesis, synthetic identities, identity-folder data, verification pairs.

Models live in :mod:`openfas.models.iresnet` (``iresnet``, ``csdn``), losses in
:mod:`openfas.losses.recognition`, training methods in :mod:`openfas.methods.recognition` (``cosface``,
``csdn``); everything trains with the one engine (:mod:`openfas.engine.trainer`).
"""
