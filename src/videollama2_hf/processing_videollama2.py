# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 processor: image/video processors + tokenizer; each `<image>`/`<video>` becomes its token run."""

from collections.abc import Callable

from transformers.processing_utils import MultiModalData, ProcessorMixin
from transformers.utils import logging

from .token_counts_videollama2 import num_visual_tokens


logger = logging.get_logger(__name__)


class VideoLlama2Processor(ProcessorMixin):
    r"""
    Wraps the vision tower's image processor, [`VideoLlama2VideoProcessor`] and the tokenizer.

    Args:
        image_processor ([`VideoLlama2ImageProcessor`]): the vision tower's preprocessing with PIL, as the original.
        video_processor ([`VideoLlama2VideoProcessor`]): decodes and samples videos.
        tokenizer: the language model's tokenizer, with `<image>` and `<video>` tokens.
        chat_template (`str`, *optional*): Jinja template (the releases' are in `chat_templates/`).
        projector_type (`str`, defaults to `"stc_connector"`): the model's connector, which sets the token count.
        patch_size (`int`, defaults to 14): the vision tower's patch size.
        projector_downsample (`list[int]`, defaults to `[2, 2, 2]`): the connector's (time, height, width) stride.
    """

    text_kwargs = {"return_tensors": "pt"}
    images_kwargs = {"return_tensors": "pt"}
    videos_kwargs = {"return_tensors": "pt"}

    def __init__(
        self,
        image_processor=None,
        video_processor=None,
        tokenizer=None,
        chat_template=None,
        projector_type: str = "stc_connector",
        patch_size: int = 14,
        projector_downsample: list[int] | tuple[int, int, int] = (2, 2, 2),
        **kwargs,
    ):
        self.projector_type = projector_type
        self.patch_size = patch_size
        self.projector_downsample = list(projector_downsample)
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<video>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        super().__init__(image_processor, video_processor, tokenizer, chat_template=chat_template, **kwargs)

    # Readers of checkpoint layouts that carry no processor files: `original_checkpoint` adds the one for the
    # released DAMO-NLP-SG checkpoints when the package is imported. Each returns a processor or None.
    layout_readers: list[Callable] = []

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Also reads a released checkpoint in the original layout when the package is imported (then
        `vision_tower=` may name the tower's folder or repo, see `original_layout.resolve_vision_tower`)."""
        for read_layout in cls.layout_readers:
            processor = read_layout(pretrained_model_name_or_path, **kwargs)
            if processor is not None:
                return processor
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @property
    def image_num_frames(self) -> int:
        """Images are clips of this many identical frames (the model's `num_frames`)."""
        return self.video_processor.num_frames

    def _num_tokens(self, height: int, width: int, num_frames: int) -> int:
        if height != width:
            raise ValueError(f"VideoLLaMA2 expects square frames after preprocessing, got {height}x{width}.")
        return num_visual_tokens(self.projector_type, height // self.patch_size, num_frames, self.projector_downsample)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        height, width = image_inputs["pixel_values"][image_idx].shape[-2:]
        return self.image_token * self._num_tokens(height, width, self.image_num_frames)

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
        video = video_inputs["pixel_values_videos"][video_idx]
        return self.video_token * self._num_tokens(video.shape[-2], video.shape[-1], video.shape[0])

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, **kwargs) -> MultiModalData:
        """Placeholder counts for serving engines. Frames are resized to the tower's square input, so sizes do not
        matter, and an image costs a clip of `num_frames` copies. `video_sizes` are `(num_frames, height, width)` of
        the frames to process, as transformers defines them: at most `max_frames` are kept, and shorter clips are
        padded with black frames to the model's `num_frames`, as the processor does."""
        side = self._processed_side()
        vision_data = {}
        if image_sizes is not None:
            per_image = self._num_tokens(side, side, self.image_num_frames)
            vision_data.update(
                num_image_tokens=[per_image] * len(image_sizes), num_image_patches=[1] * len(image_sizes)
            )
        if video_sizes is not None:
            if any(len(size) != 3 for size in video_sizes):
                raise ValueError(f"`video_sizes` must hold (num_frames, height, width) per video, got {video_sizes}.")
            vision_data["num_video_tokens"] = [
                self._num_tokens(side, side, self._processed_num_frames(num_frames))
                for num_frames, _, _ in video_sizes
            ]
        return MultiModalData(**vision_data)

    def _processed_num_frames(self, num_frames: int) -> int:
        """Frames a clip of `num_frames` frames has after the video processor's truncation and padding."""
        max_frames, padded_to = self.video_processor.max_frames, self.video_processor.num_frames
        if max_frames is not None:
            num_frames, padded_to = min(num_frames, max_frames), min(padded_to, max_frames)
        return max(num_frames, padded_to)

    def _processed_side(self) -> int:
        processor = self.image_processor
        crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
        size = crop or processor.size
        return size.get("height") or size["shortest_edge"]

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens=True, **kwargs):
        """Decoded answers, stripped as the original's `mm_infer` does."""
        texts = self.tokenizer.batch_decode(generated_outputs, skip_special_tokens=skip_special_tokens, **kwargs)
        return [text.strip() for text in texts]


__all__ = ["VideoLlama2Processor"]
