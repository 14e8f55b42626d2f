# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Register VideoLLaMA2 with the transformers Auto classes (called by `import videollama2_hf`)."""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
    AutoVideoProcessor,
)

from .configuration_videollama2 import VideoLlama2AudioEncoderConfig, VideoLlama2Config
from .feature_extraction_videollama2 import VideoLlama2FeatureExtractor
from .image_processing_videollama2 import VideoLlama2ImageProcessor
from .modeling_videollama2 import VideoLlama2ForConditionalGeneration, VideoLlama2Model
from .modeling_videollama2_audio import VideoLlama2AudioEncoder
from .original_checkpoint import register_original_checkpoints
from .processing_videollama2 import VideoLlama2Processor
from .video_processing_videollama2 import VideoLlama2VideoProcessor


def register_auto_classes() -> None:
    """Idempotent: the Auto classes, the image processor, and the readers of the released checkpoints."""
    AutoConfig.register(VideoLlama2Config.model_type, VideoLlama2Config, exist_ok=True)
    AutoModel.register(VideoLlama2Config, VideoLlama2Model, exist_ok=True)
    AutoModelForImageTextToText.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)
    AutoModelForMultimodalLM.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(VideoLlama2Config, VideoLlama2Processor, exist_ok=True)
    AutoVideoProcessor.register(VideoLlama2Config, VideoLlama2VideoProcessor, exist_ok=True)
    # Whichever backend is asked for: only PIL gives the original's pixels (transformers' torchvision resize differs).
    AutoImageProcessor.register(
        VideoLlama2Config,
        image_processor_classes={"pil": VideoLlama2ImageProcessor, "torchvision": VideoLlama2ImageProcessor},
        exist_ok=True,
    )
    # The BEATs audio encoder of VideoLLaMA2.1-AV, a sub-model with its own config, and its filterbank extractor.
    AutoConfig.register(VideoLlama2AudioEncoderConfig.model_type, VideoLlama2AudioEncoderConfig, exist_ok=True)
    AutoModel.register(VideoLlama2AudioEncoderConfig, VideoLlama2AudioEncoder, exist_ok=True)
    AutoFeatureExtractor.register(VideoLlama2AudioEncoderConfig, VideoLlama2FeatureExtractor, exist_ok=True)
    # Released DAMO-NLP-SG checkpoints (model_type videollama2_*, original tensor names) load without conversion.
    register_original_checkpoints()
    # What `save_pretrained` writes loads with transformers alone (`trust_remote_code=True`, e.g. a fine-tuned model
    # pushed to the Hub): transformers copies the module of a class registered for an Auto class, and what it imports,
    # into the folder and names it in the folder's `auto_map`. (The config adds the code of its custom pipelines.)
    VideoLlama2Config.register_for_auto_class("AutoConfig")
    VideoLlama2Model.register_for_auto_class("AutoModel")
    VideoLlama2ForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    VideoLlama2Processor.register_for_auto_class("AutoProcessor")
    VideoLlama2ImageProcessor.register_for_auto_class("AutoImageProcessor")
    VideoLlama2VideoProcessor.register_for_auto_class("AutoVideoProcessor")
    VideoLlama2FeatureExtractor.register_for_auto_class("AutoFeatureExtractor")


__all__ = ["register_auto_classes"]
