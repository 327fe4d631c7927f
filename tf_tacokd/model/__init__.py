"""Tacotron2 in Keras 3: encoder, location-sensitive attention, while-loop decoder, postnet."""

from .attention import LocationSensitiveAttention
from .decoder import Decoder, DecoderOutput
from .encoder import Encoder
from .layers import ConvBlock, Linear, Postnet, Prenet
from .tacotron2 import PaperSchedule, Tacotron2, masked_mse, teacher_prob_at

__all__ = [
    "Tacotron2", "Encoder", "Decoder", "DecoderOutput", "LocationSensitiveAttention", "Prenet",
    "Postnet", "ConvBlock", "Linear", "PaperSchedule", "teacher_prob_at", "masked_mse",
]
