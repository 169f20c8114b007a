"""Synthetic streaming platform: contract tables plus hidden ground truth.

>>> from recsys.synth import generate_platform, SCALES
>>> summary = generate_platform("demo", scale="tiny", seed=0)  # doctest: +SKIP

See :mod:`recsys.synth.generator` for what is written and
:mod:`recsys.synth.scales` for the sizes.
"""

from recsys.synth.generator import NOW, WINDOW_END, GenerationSummary, generate_platform
from recsys.synth.scales import SCALES, Scale

__all__ = ["NOW", "SCALES", "WINDOW_END", "GenerationSummary", "Scale", "generate_platform"]
