"""VideoLLaMA2 for transformers 5. `import videollama2_hf` registers the model with the Auto classes.

The classes load on first use (PEP 562), and registration imports them. The `videollama2-hf` command is the one
exception: its launcher (`videollama2_hf_cli`) asks for registration to wait, so that `--help`, `info` and `convert`
start without importing torch; the commands that load a model register it themselves.
"""

import os
from importlib import import_module


__version__ = "0.2.0"

# Set by the command-line launcher only; read once, so that processes started later register as usual.
DEFER_REGISTRATION_VARIABLE = "VIDEOLLAMA2_HF_DEFER_REGISTRATION"

_PUBLIC_NAMES = {
    "VideoLlama2AudioEncoder": "modeling_videollama2_audio",
    "VideoLlama2AudioEncoderConfig": "configuration_videollama2",
    "VideoLlama2Config": "configuration_videollama2",
    "VideoLlama2FeatureExtractor": "feature_extraction_videollama2",
    "VideoLlama2ForConditionalGeneration": "modeling_videollama2",
    "VideoLlama2ImageProcessor": "image_processing_videollama2",
    "VideoLlama2Model": "modeling_videollama2",
    "VideoLlama2PreTrainedModel": "modeling_videollama2",
    "VideoLlama2Processor": "processing_videollama2",
    "VideoLlama2VideoProcessor": "video_processing_videollama2",
    "num_audio_tokens": "token_counts_videollama2",
    "num_visual_tokens": "token_counts_videollama2",
    "register_auto_classes": "auto_registration",
}


def __getattr__(name: str):
    if name not in _PUBLIC_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_PUBLIC_NAMES[name]}", __name__), name)


def __dir__():
    return sorted([*globals(), *_PUBLIC_NAMES])


if os.environ.pop(DEFER_REGISTRATION_VARIABLE, "") != "1":
    from .auto_registration import register_auto_classes as _register

    _register()

__all__ = ["__version__", *_PUBLIC_NAMES]
