"""tf_tacokd: robust Tacotron2 TTS with teacher-student knowledge distillation.

Importing the package does not import TensorFlow; the text front end
(:mod:`tf_tacokd.text`) and the config loader (:mod:`tf_tacokd.config`) are pure
Python so that on-device tools can reuse them.
"""

__version__ = "0.1.0"
