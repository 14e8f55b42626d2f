# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 processor: image/video processors + tokenizer; each `<image>`/`<video>` becomes its token run."""

import importlib
from pathlib import Path

from transformers.processing_utils import MultiModalData, ProcessorMixin
from transformers.utils import logging

from .configuration_videollama2 import num_visual_tokens


logger = logging.get_logger(__name__)

CHAT_TEMPLATE_DIR = Path(__file__).parent / "chat_templates"
CHAT_TEMPLATE_FAMILIES = {"mistral": "mistral", "mixtral": "mistral", "llama": "mistral", "qwen2": "chatml"}


def load_chat_template(family: str) -> str:
    """The chat template of a language-model family (`mistral` or `chatml`, or an LLM `model_type`)."""
    name = CHAT_TEMPLATE_FAMILIES.get(family, family)
    path = CHAT_TEMPLATE_DIR / f"{name}.jinja"
    if not path.is_file():
        raise ValueError(
            f"No chat template for {family!r}; known: {sorted(set(CHAT_TEMPLATE_FAMILIES) | {'chatml'})}."
        )
    return path.read_text()


def load_original_tokenizer(path_or_repo_id, **kwargs):
    """The released tokenizer with `<image>`/`<video>` appended as special tokens.

    The generic `TokenizersBackend` runs the checkpoint's own tokenizer.json pipeline; transformers 5's
    `LlamaTokenizer` rebuilds a Metaspace pipeline that drops the legacy "▁" after `<s>`, which would change
    the original's input ids.
    """
    from transformers import TokenizersBackend

    tokenizer = TokenizersBackend.from_pretrained(
        path_or_repo_id, extra_special_tokens={"image_token": "<image>", "video_token": "<video>"}, **kwargs
    )
    if tokenizer.pad_token is None:  # the original sets pad = unk when missing
        tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "left"  # batched generation; the original only padded (right) for training
    return tokenizer


class VideoLlama2Processor(ProcessorMixin):
    r"""
    Wraps the vision tower's image processor, [`VideoLlama2VideoProcessor`] and the tokenizer.

    Args:
        image_processor ([`VideoLlama2ImageProcessor`]): the vision tower's preprocessing with PIL, as the original.
        video_processor ([`VideoLlama2VideoProcessor`]): decodes and samples videos.
        tokenizer: the language model's tokenizer, with `<image>` and `<video>` tokens.
        chat_template (`str`, *optional*): Jinja template; `load_chat_template("mistral"|"chatml")`.
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

    @classmethod
    def from_original(cls, tokenizer, image_processor_settings: dict, config, chat_template_family: str | None = None):
        """Build the processor of a converted checkpoint from its tokenizer, the tower's preprocessor settings and
        the `VideoLlama2Config`. Images use the PIL backend: its bicubic resize is what the original computed."""
        from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil

        from .image_processing_videollama2 import VideoLlama2ImageProcessor
        from .video_processing_videollama2 import VideoLlama2VideoProcessor

        settings = {
            key: value
            for key, value in image_processor_settings.items()
            if key not in ("feature_extractor_type", "image_processor_type", "processor_class", "auto_map")
        }
        is_siglip = config.vision_config.model_type == "siglip_vision_model"
        tower_processor = (SiglipImageProcessorPil if is_siglip else CLIPImageProcessorPil)(**settings)
        # Images and frames get exactly the tower's pipeline; settings it leaves unset (SigLIP has no crop) must be
        # switched off explicitly, not left to VideoLLaMA2's CLIP defaults.
        pipeline = {
            key: getattr(tower_processor, key, None)
            for key in ("do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize")
            + ("image_mean", "image_std", "do_convert_rgb", "crop_size")
        }
        pipeline["do_center_crop"] = bool(getattr(tower_processor, "do_center_crop", False))
        image_processor = VideoLlama2ImageProcessor(**pipeline)
        video_processor = VideoLlama2VideoProcessor(**pipeline, num_frames=config.num_frames)
        family = chat_template_family or config.text_config.model_type
        return cls(
            image_processor=image_processor,
            video_processor=video_processor,
            tokenizer=tokenizer,
            chat_template=load_chat_template(family),
            projector_type=config.projector_type,
            patch_size=config.vision_config.patch_size,
            projector_downsample=config.projector_downsample,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Also reads a released checkpoint in the original layout (a config.json with `mm_vision_tower` and no
        processor_config.json); `vision_tower=` then names the tower's folder or repo (see `original_checkpoint`)."""
        try:  # imported by name so that remote-code copies of this file do not drag the loader along
            original = importlib.import_module(".original_checkpoint", __package__)
        except ImportError:
            original = None
        if original is not None and original.is_original_checkpoint(pretrained_model_name_or_path, **kwargs):
            return original.original_processor(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def to_dict(self) -> dict:
        """transformers' serialisation; a processor saved as remote code (`register_for_auto_class`) also names its
        VideoLLaMA2 image and video processors for `AutoImageProcessor` / `AutoVideoProcessor`. Their files ship with
        the processor's, so each Auto class alone loads them (transformers' own image processors would come back with
        the torchvision backend)."""
        output = super().to_dict()
        if self._auto_class is None:
            return output
        package = __name__.rpartition(".")[0]
        for attribute, auto_class in (
            ("image_processor", "AutoImageProcessor"),
            ("video_processor", "AutoVideoProcessor"),
        ):
            module, _, file = type(getattr(self, attribute)).__module__.rpartition(".")
            if module == package and isinstance(output.get(attribute), dict):
                auto_map = output[attribute].setdefault("auto_map", {})
                auto_map[auto_class] = f"{file}.{type(getattr(self, attribute)).__name__}"
        return output

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


__all__ = ["VideoLlama2Processor", "load_chat_template", "load_original_tokenizer"]
