"""Masked-face recognition: identity-folder data, landmarks, verification pairs, teachers.

Mask synthesis and synthetic identities live in :mod:`openfas.data.synth` (``masks``, ``identities``).

Models live in :mod:`openfas.models.iresnet` (``iresnet``, ``csdn``), losses in
:mod:`openfas.losses.recognition`, training methods in :mod:`openfas.methods.recognition` (``cosface``,
``csdn``); everything trains with the one engine (:mod:`openfas.engine.trainer`).
"""
