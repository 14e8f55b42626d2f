# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 processor: image/video processors + tokenizer (+ the filterbank extractor of audio-visual models);
each `<image>`/`<video>`/`<audio>` becomes its token run."""

from numbers import Number

from transformers.processing_utils import MultiModalData, OmniModalProcessorMixin
from transformers.utils import logging
from transformers.video_utils import make_batched_videos

from .audio_decoding_videollama2 import load_video_audio
from .token_counts_videollama2 import num_audio_tokens, num_visual_tokens
from .video_decoding_videollama2 import is_video_source, split_videos


logger = logging.get_logger(__name__)

NO_AUDIO_TOWER = (
    "This checkpoint has no audio encoder, so it cannot hear audio: only audio-visual checkpoints such as "
    "VideoLLaMA2.1-7B-AV do (their processor has a feature extractor). Ask about the video or image alone."
)
# `transformers serve` asks every multimodal model for the sound of videos; a model without ears only sees them.
VIDEOS_NOT_HEARD = "This checkpoint has no audio encoder: `load_audio_from_video` is ignored, videos are only seen."


def _is_empty(media) -> bool:
    """`[]`, or `[[], []]` as `apply_chat_template` groups media per conversation: no media of that kind."""
    return isinstance(media, (list, tuple)) and all(isinstance(item, (list, tuple)) and not item for item in media)


def _after_last(marker: list[int], ids: list[int]) -> list[int]:
    """`ids` after the last occurrence of `marker` in them; all of `ids` without one (or without a marker)."""
    for start in range(len(ids) - len(marker), -1, -1) if marker else ():
        if ids[start : start + len(marker)] == marker:
            return ids[start + len(marker) :]
    return ids


def _only_audio_sources(audio) -> bool:
    """True when `audio` holds no waveform: nothing, or files, URLs and bytes to decode (at a known rate)."""
    if audio is None:
        return True
    if isinstance(audio, (list, tuple)) and audio and not isinstance(audio[0], Number):
        return all(_only_audio_sources(item) for item in audio)
    return is_video_source(audio)


class VideoLlama2Processor(OmniModalProcessorMixin):
    r"""
    Wraps the vision tower's image processor, [`VideoLlama2VideoProcessor`] and the tokenizer, and for an
    audio-visual model (VideoLLaMA2.1-AV) the [`VideoLlama2FeatureExtractor`].

    Audio comes as `audio=` (files, URLs or 16 kHz waveforms), one per `<audio>` in the text, or, with
    `load_audio_from_video=True`, from the sound track of each video: as in the original, a video's `<video>` then
    stands for its frames followed by its sound (`<video>` x video tokens, then `<audio>` x audio tokens).

    Args:
        image_processor ([`VideoLlama2ImageProcessor`]): the vision tower's preprocessing with PIL, as the original.
        video_processor ([`VideoLlama2VideoProcessor`]): decodes and samples videos.
        tokenizer: the language model's tokenizer, with `<image>` and `<video>` tokens (and `<audio>` for an
            audio-visual model).
        feature_extractor ([`VideoLlama2FeatureExtractor`], *optional*): the filterbank of an audio-visual model;
            other models have none and reject audio.
        chat_template (`str`, *optional*): Jinja template (the releases' are in `chat_templates/`).
        projector_type (`str`, defaults to `"stc_connector"`): the model's connector, which sets the token count.
        patch_size (`int`, defaults to 14): the vision tower's patch size.
        projector_downsample (`list[int]`, defaults to `[2, 2, 2]`): the connector's (time, height, width) stride.
        audio_patch_size (`int`, defaults to 16): the audio encoder's (time x frequency) patch side.
    """

    text_kwargs = {"return_tensors": "pt"}
    images_kwargs = {"return_tensors": "pt"}
    videos_kwargs = {"return_tensors": "pt"}

    def __init__(
        self,
        image_processor=None,
        video_processor=None,
        tokenizer=None,
        feature_extractor=None,
        chat_template=None,
        projector_type: str = "stc_connector",
        patch_size: int = 14,
        projector_downsample: list[int] | tuple[int, int, int] = (2, 2, 2),
        audio_patch_size: int = 16,
        **kwargs,
    ):
        self.projector_type = projector_type
        self.patch_size = patch_size
        self.projector_downsample = list(projector_downsample)
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<video>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        self.audio_token = getattr(tokenizer, "audio_token", None)
        self.audio_token_id = None if self.audio_token is None else tokenizer.convert_tokens_to_ids(self.audio_token)
        super().__init__(image_processor, video_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.feature_extractor = self._audio_feature_extractor(feature_extractor)
        self.audio_patch_size = audio_patch_size

    def _audio_feature_extractor(self, feature_extractor):
        from .feature_extraction_videollama2 import VideoLlama2FeatureExtractor

        if feature_extractor is None:
            return None
        if isinstance(feature_extractor, dict):  # as `from_pretrained` reads it from processor_config.json
            feature_extractor = VideoLlama2FeatureExtractor.from_dict(feature_extractor)
        if not isinstance(feature_extractor, VideoLlama2FeatureExtractor):
            raise TypeError(
                f"feature_extractor must be a VideoLlama2FeatureExtractor, got {type(feature_extractor).__name__}."
            )
        if self.audio_token is None:
            raise ValueError(
                "An audio-visual processor needs a tokenizer with an <audio> token: add it as an extra special token "
                '(`extra_special_tokens={"audio_token": "<audio>"}`).'
            )
        return feature_extractor

    def to_dict(self) -> dict:
        """Processors without a feature extractor save no audio settings, exactly as before audio existed."""
        output = super().to_dict()
        if self.feature_extractor is None:
            for key in ("feature_extractor", "audio_patch_size"):
                output.pop(key, None)
        return output

    @classmethod
    def get_attributes(cls) -> list[str]:
        """The sub-processors every VideoLLaMA2 processor has. The feature extractor of audio-visual models is
        optional: it is saved inside processor_config.json and comes back through `__init__`."""
        return [name for name in super().get_attributes() if name != "feature_extractor"]

    @property
    def model_input_names(self) -> list[str]:
        names = super().model_input_names
        return names if self.feature_extractor is None else names + list(self.feature_extractor.model_input_names)

    def __call__(
        self, images=None, text=None, videos=None, audio=None, audio_from_video_indices=None, audios=None, **kwargs
    ):
        """transformers' omni-modal processing. Audio files, URLs and the sound of videos are decoded here, at the
        feature extractor's rate; waveforms given as arrays need `sampling_rate=` (16 kHz). An empty list (or a list
        of empty per-conversation lists) of images, videos or audio means none of that kind.

        Prompts rendered by the chat template (`apply_chat_template(..., tokenize=False)`) already start with the
        BOS of Mistral checkpoints: no second one is added, as `apply_chat_template(tokenize=True)` does. `audios=`,
        transformers 4's name that evaluation harnesses still pass (lmms-eval), is taken as `audio=`."""
        if audios is not None:
            if audio is not None:
                raise ValueError("Pass the audio once, as `audio=` (`audios=` is its former name).")
            audio = audios
        images, videos, audio = (None if _is_empty(media) else media for media in (images, videos, audio))
        if self._starts_with_bos(text) and "add_special_tokens" not in {**kwargs, **kwargs.get("text_kwargs", {})}:
            kwargs["add_special_tokens"] = False
        if "load_audio_from_video" in kwargs:
            kwargs["load_audio_from_video"] = self._hears_videos(kwargs["load_audio_from_video"])
        if videos is not None:
            split_videos(videos)  # a video given as an empty frame list: one clear error before transformers' checks
        if self.feature_extractor is not None and _only_audio_sources(audio):
            kwargs.setdefault("sampling_rate", self.feature_extractor.sampling_rate)
        return super().__call__(
            images=images,
            text=text,
            videos=videos,
            audio=audio,
            audio_from_video_indices=audio_from_video_indices,
            **kwargs,
        )

    def _hears_videos(self, load_audio_from_video) -> bool:
        """`load_audio_from_video`, ignored (with a warning) by a processor without a feature extractor."""
        if self.feature_extractor is None and load_audio_from_video:
            logger.warning_once(VIDEOS_NOT_HEARD)
            return False
        return bool(load_audio_from_video)

    def _starts_with_bos(self, text) -> bool:
        """Whether every prompt of `text` (a string or a list of them) starts with the tokenizer's BOS text."""
        bos = self.tokenizer.bos_token
        texts = [text] if isinstance(text, str) else text
        return bool(
            bos
            and texts
            and isinstance(texts, (list, tuple))
            and all(isinstance(prompt, str) and prompt.startswith(bos) for prompt in texts)
        )

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        if self.feature_extractor is None and audio is not None:
            raise ValueError(NO_AUDIO_TOWER)
        super().validate_inputs(images=images, text=text, videos=videos, audio=audio, **kwargs)

    def _multimodal_inputs_from_conversations(self, conversations, audio_loading_params, load_audio_from_video=False):
        """transformers' reading of chat media, with audio files decoded the original's way first (`load_audio`:
        soundfile's scaling, FFT resampling), which the generic audio loader would resample differently."""
        has_audio = any(
            isinstance(message.get("content"), list) and any(block["type"] == "audio" for block in message["content"])
            for conversation in conversations
            for message in conversation
        )
        if self.feature_extractor is None and has_audio:
            raise ValueError(NO_AUDIO_TOWER)
        load_audio_from_video = self._hears_videos(load_audio_from_video)
        for conversation in conversations:
            for message in conversation:
                if isinstance(message.get("content"), list):
                    message["content"] = self._decoded_audio_blocks(message["content"], load_audio_from_video)
        return super()._multimodal_inputs_from_conversations(
            conversations, audio_loading_params, load_audio_from_video
        )

    def _decoded_audio_blocks(self, content: list[dict], load_audio_from_video: bool) -> list[dict]:
        """Audio items decoded; with `load_audio_from_video`, the source-less `{"type": "audio"}` right after a video
        (the marker transformers asks for) is dropped, since that video's `<video>` already holds its sound."""
        blocks = []
        for previous, block in zip([None, *content], content):
            if block["type"] != "audio":
                blocks.append(block)
                continue
            key = next((key for key in ("audio", "url", "path") if block.get(key) is not None), None)
            if key is not None:
                blocks.append({"type": "audio", "audio": self.feature_extractor.fetch_audio(block[key])})
            elif not (load_audio_from_video and previous is not None and previous["type"] == "video"):
                raise ValueError(
                    'An {"type": "audio"} item needs its audio ("path", "url" or "audio"); an empty one only marks '
                    "the sound of the video right before it, with `load_audio_from_video=True`."
                )
        return blocks

    def _resolve_audio_from_video(self, videos, audio=None, audio_from_video_indices=None):
        """Each video's sound track as the original hears it (`load_video_audio`: 8 clips of 2 s spread over the
        track), decoded here so that transformers only pairs the tracks with their videos. A video without sound is
        an error: the original silently heard 30 s of zeros."""
        videos = make_batched_videos(videos)
        audio = list(audio or [])
        if audio_from_video_indices is None and not audio:  # one sound track per video
            audio_from_video_indices = list(range(len(videos)))
        if audio_from_video_indices is not None and audio_from_video_indices.count(None) == len(audio):
            # decode the sound of each video listed; the `None`s take the standalone audio in order
            standalone = iter(audio)
            audio = [
                next(standalone) if index is None else self._video_audio(videos[index])
                for index in audio_from_video_indices
            ]
        return super()._resolve_audio_from_video(
            videos, audio=audio, audio_from_video_indices=audio_from_video_indices
        )

    @staticmethod
    def _video_audio(video):
        if not is_video_source(video):
            raise ValueError(
                "`load_audio_from_video=True` reads the sound of video files: pass each video as a path, URL or bytes "
                f"(got {type(video).__name__}), or pass its waveform with `audio=` and `audio_from_video_indices`."
            )
        return load_video_audio(video)

    @property
    def image_num_frames(self) -> int:
        """Images are clips of this many identical frames (the model's `num_frames`)."""
        return self.video_processor.num_frames

    def _num_tokens(self, height: int, width: int, num_frames: int) -> int:
        if height != width:
            raise ValueError(f"VideoLLaMA2 expects square frames after preprocessing, got {height}x{width}.")
        return num_visual_tokens(self.projector_type, height // self.patch_size, num_frames, self.projector_downsample)

    def _num_audio_tokens(self, num_frames: int) -> int:
        return num_audio_tokens(num_frames, self.feature_extractor.feature_size, self.audio_patch_size)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        height, width = image_inputs["pixel_values"][image_idx].shape[-2:]
        return self.image_token * self._num_tokens(height, width, self.image_num_frames)

    def replace_video_token(
        self,
        video_inputs: dict,
        video_idx: int,
        processed_audio: dict | None = None,
        video_to_audio_indices: list | None = None,
        **kwargs,
    ) -> str:
        """The video's tokens, then, with `load_audio_from_video`, its sound's: the original's [video ; audio]."""
        video = video_inputs["pixel_values_videos"][video_idx]
        replacement = self.video_token * self._num_tokens(video.shape[-2], video.shape[-1], video.shape[0])
        audio_idx = video_to_audio_indices[video_idx] if kwargs.get("load_audio_from_video") else None
        if audio_idx is not None:
            replacement += self.replace_audio_token(processed_audio, audio_idx)
        return replacement

    def replace_audio_token(self, audio_inputs: dict, audio_idx: int, **kwargs) -> str:
        return self.audio_token * self._num_audio_tokens(audio_inputs["input_features"][audio_idx].shape[0])

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, audio_lengths=None, **kwargs):
        """Placeholder counts for serving engines. Frames are resized to the tower's square input, so sizes do not
        matter, and an image costs a clip of `num_frames` copies. `video_sizes` are `(num_frames, height, width)` of
        the frames to process, as transformers defines them: at most `max_frames` are kept, and shorter clips are
        padded with black frames to the model's `num_frames`, as the processor does. Every audio clip is cut or
        padded to the same duration, so `audio_lengths` (in samples) only give the number of clips."""
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
        if audio_lengths is not None:
            if self.feature_extractor is None:
                raise ValueError(NO_AUDIO_TOWER)
            per_clip = self._num_audio_tokens(self.feature_extractor.num_frames)
            vision_data["num_audio_tokens"] = [per_clip] * len(audio_lengths)
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

    def _generation_prompt_ids(self) -> list[int]:
        """The token ids that end every prompt the chat template renders for generation (ChatML's
        `<|im_end|>\n<|im_start|>assistant\n`, Mistral's ` [/INST]`): the prompt of a short user turn tokenized with
        and without them. Empty without a chat template."""
        if self.chat_template is None:
            return []
        marker = "\x00"
        prompt = self.apply_chat_template([{"role": "user", "content": marker}], add_generation_prompt=True)
        head = prompt[: prompt.rindex(marker) + 1]
        full_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        head_ids = self.tokenizer(head, add_special_tokens=False)["input_ids"]
        return full_ids[len(head_ids) :] if full_ids[: len(head_ids)] == head_ids else []

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens=True, **kwargs):
        """Each sequence's answer, stripped as the original's `mm_infer` does: what follows its last generation
        prompt, so all of it for generated tokens alone. Sequences that still hold their prompt, as the
        image-text-to-text pipeline decodes them, thus give the answer without the whitespace that ends the prompt
        (the newline after ChatML's "assistant", the space before a Mistral answer), and their prompt alone gives
        nothing (the pipeline takes that off the front)."""
        if getattr(generated_outputs, "ndim", 2) == 1:
            generated_outputs = generated_outputs[None]
        marker = self._generation_prompt_ids()
        answers = [_after_last(marker, [int(token) for token in ids]) for ids in generated_outputs]
        texts = self.tokenizer.batch_decode(answers, skip_special_tokens=skip_special_tokens, **kwargs)
        return [text.strip() for text in texts]


__all__ = ["VideoLlama2Processor"]
