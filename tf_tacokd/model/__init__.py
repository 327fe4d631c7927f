"""Tacotron2 in Keras 3: encoder, location-sensitive attention, while-loop decoder, postnet."""

from .attention import LocationSensitiveAttention
from .decoder import DecodeOptions, Decoder, DecoderOutput
from .encoder import Encoder
from .layers import ConvBlock, Linear, Postnet, Prenet
from .losses import masked_mse
from .schedules import PaperSchedule, teacher_prob_at
from .tacotron2 import Tacotron2

__all__ = [
    "Tacotron2", "Encoder", "Decoder", "DecodeOptions", "DecoderOutput", "LocationSensitiveAttention", "Prenet",
    "Postnet", "ConvBlock", "Linear", "PaperSchedule", "teacher_prob_at", "masked_mse",
]
