"""Decoding limits shared by the host (:mod:`tf_tacokd.synthesize`, evaluation) and the device
(:class:`tf_tacokd.lite.LiteSynthesizer`); numpy only, no TensorFlow.

Example:
    >>> decoder_bound(40, {"sample_rate": 16000, "hop_length": 256}, 2)
    384
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["decoder_bound"]


def decoder_bound(n_tokens: int, audio: Any, reduction_factor: int, floor_steps: int = 0,
                  seconds_per_token: float = 0.25, base_seconds: float = 1.0,
                  cap_seconds: float = 60.0) -> int:
    """Decoder steps allowed for a text of ``n_tokens`` symbols: ``base_seconds`` plus
    ``seconds_per_token`` per symbol (about 4x espeak-ng's speaking time), at most
    ``cap_seconds``, and never below ``floor_steps``.

    A lone letter gets about 1.5 s instead of the model's whole ``max_decoder_steps``, so
    a model that does not stop cannot babble for 10 s; a 200-character sentence gets the
    time it needs instead of being cut at a fixed bound.

    Args:
        n_tokens: the utterance's symbols (ids, EOS included).
        audio: the ``[audio]`` config, or a dict with ``sample_rate`` and ``hop_length``
            (a TFLite sidecar's ``audio``).
        reduction_factor: frames per decoder step.

    Example:
        >>> from tf_tacokd.config import AudioConfig
        >>> decoder_bound(2, AudioConfig(sample_rate=16000, hop_length=256), 2)  # 47 steps, rounded up
        48
    """
    rate, hop = ((audio["sample_rate"], audio["hop_length"]) if isinstance(audio, dict)
                 else (audio.sample_rate, audio.hop_length))
    fps = rate / hop
    seconds = min(base_seconds + seconds_per_token * n_tokens, cap_seconds)
    steps = max(int(np.ceil(seconds * fps / reduction_factor)), floor_steps)
    # round up to 2^k or 1.5 * 2^k: a handful of distinct bounds, so the decoder is compiled
    # a handful of times rather than once per text length
    size = 1 << max(steps - 1, 1).bit_length()
    return size * 3 // 4 if size * 3 // 4 >= steps else size
