"""Synthetic data: procedural faces and what is made from them (test and demo aids, not benchmarks).

* :mod:`openfas.data.synth.faces` – the face renderer: a random subject (shape, skin, eyes, hair, glasses)
  drawn as RGB, depth and IR layers under a given look (light, background) and jitter (pose, expression);
* :mod:`openfas.data.synth.pad` – live / print / replay crop caches for face anti-spoofing, one simulated
  camera per domain (``openfas data synth``);
* :mod:`openfas.data.synth.masks` – face masks (surgical, cloth, N95) drawn from five landmarks, on synthetic
  and real photos;
* :mod:`openfas.data.synth.identities` – identity folders with landmarks and masked verification pairs for
  masked-face recognition (``openfas data synth-ids``).

Nothing is imported here: each module is imported by its full name.
"""
