"""rtvoice: streaming, real-time Tacotron 2 + WaveGlow text-to-speech.

The public API is small: load a :class:`Voice`, then ``voice.synthesize(text)`` (a
generator of :class:`AudioChunk`) or ``async for chunk in voice.stream(text)``.
"""

from .audio import AudioChunk, Timing, write_wav
from .config import SynthesisConfig, VoiceConfig
from .errors import RtvoiceError
from .voice import Voice

__all__ = ["AudioChunk", "RtvoiceError", "SynthesisConfig", "Timing", "Voice", "VoiceConfig", "write_wav"]
__version__ = "0.1.0"
