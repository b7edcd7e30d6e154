"""The vocabulary every layer shares (imports nothing): labels, attack types and input modalities.

Label convention: ``label = 1`` live / bona fide, ``label = 0`` spoof / attack; scores: higher = more live.
Attack types are lower-case strings from :data:`ATTACK_TYPES`; a live sample has attack ``"live"``.
"""

LIVE, SPOOF = 1, 0
ATTACK_TYPES: tuple[str, ...] = ("live", "print", "replay", "mask", "other")
MODALITIES: tuple[str, ...] = ("rgb", "depth", "ir")
