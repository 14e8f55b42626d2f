"""VideoLLaMA2 for transformers 5. Importing the package registers it with the Auto classes."""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
    AutoVideoProcessor,
    CLIPImageProcessorPil,
)

from .configuration_videollama2 import (
    VideoLlama2AudioEncoderConfig,
    VideoLlama2Config,
    num_audio_tokens,
    num_visual_tokens,
)
from .feature_extraction_videollama2 import VideoLlama2FeatureExtractor
from .modeling_beats import VideoLlama2AudioEncoder
from .modeling_videollama2 import VideoLlama2ForConditionalGeneration, VideoLlama2Model, VideoLlama2PreTrainedModel
from .original_checkpoint import register_original_checkpoints
from .processing_videollama2 import VideoLlama2Processor
from .video_processing_videollama2 import VideoLlama2VideoProcessor


AutoConfig.register(VideoLlama2Config.model_type, VideoLlama2Config, exist_ok=True)
AutoConfig.register(VideoLlama2AudioEncoderConfig.model_type, VideoLlama2AudioEncoderConfig, exist_ok=True)
AutoModel.register(VideoLlama2AudioEncoderConfig, VideoLlama2AudioEncoder, exist_ok=True)
AutoFeatureExtractor.register(VideoLlama2AudioEncoderConfig, VideoLlama2FeatureExtractor, exist_ok=True)
AutoModel.register(VideoLlama2Config, VideoLlama2Model, exist_ok=True)
AutoModelForImageTextToText.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)
AutoModelForMultimodalLM.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)
AutoProcessor.register(VideoLlama2Config, VideoLlama2Processor, exist_ok=True)
AutoVideoProcessor.register(VideoLlama2Config, VideoLlama2VideoProcessor, exist_ok=True)
# The default tower is CLIP; converted checkpoints name their (CLIP or SigLIP) PIL image processor explicitly.
AutoImageProcessor.register(VideoLlama2Config, image_processor_classes={"pil": CLIPImageProcessorPil}, exist_ok=True)
# Released DAMO-NLP-SG checkpoints (model_type videollama2_*, original tensor names) load without conversion.
register_original_checkpoints()
try:  # transformers 5 removed AutoModelForVision2Seq; register where it still exists
    from transformers import AutoModelForVision2Seq
except ImportError:
    AutoModelForVision2Seq = None
else:
    AutoModelForVision2Seq.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)

__all__ = [
    "VideoLlama2AudioEncoder",
    "VideoLlama2AudioEncoderConfig",
    "VideoLlama2Config",
    "VideoLlama2FeatureExtractor",
    "VideoLlama2ForConditionalGeneration",
    "VideoLlama2Model",
    "VideoLlama2PreTrainedModel",
    "VideoLlama2Processor",
    "VideoLlama2VideoProcessor",
    "num_audio_tokens",
    "num_visual_tokens",
]
