# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Register VideoLLaMA2 with the transformers Auto classes (called by `import videollama2_hf`)."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
    AutoVideoProcessor,
    CLIPImageProcessorPil,
)

from .configuration_videollama2 import VideoLlama2Config
from .modeling_videollama2 import VideoLlama2ForConditionalGeneration, VideoLlama2Model
from .original_checkpoint import register_original_checkpoints
from .processing_videollama2 import VideoLlama2Processor
from .video_processing_videollama2 import VideoLlama2VideoProcessor


def register_auto_classes() -> None:
    """Idempotent: the Auto classes, the image processor backend, and the readers of the released checkpoints."""
    AutoConfig.register(VideoLlama2Config.model_type, VideoLlama2Config, exist_ok=True)
    AutoModel.register(VideoLlama2Config, VideoLlama2Model, exist_ok=True)
    AutoModelForImageTextToText.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)
    AutoModelForMultimodalLM.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(VideoLlama2Config, VideoLlama2Processor, exist_ok=True)
    AutoVideoProcessor.register(VideoLlama2Config, VideoLlama2VideoProcessor, exist_ok=True)
    # The default tower is CLIP; converted checkpoints name their (CLIP or SigLIP) PIL image processor explicitly.
    AutoImageProcessor.register(
        VideoLlama2Config, image_processor_classes={"pil": CLIPImageProcessorPil}, exist_ok=True
    )
    # Released DAMO-NLP-SG checkpoints (model_type videollama2_*, original tensor names) load without conversion.
    register_original_checkpoints()


__all__ = ["register_auto_classes"]
