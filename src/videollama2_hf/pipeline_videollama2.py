# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Visual question answering on images and videos (and, with an audio-visual model, sounds) with a generative
VideoLLaMA2 model.

transformers 5 removed the `visual-question-answering` task name; a model repository can still provide it as a
custom pipeline. `videollama2_hf.remote_code.add_vqa_pipeline_to_folder(folder)` copies this file into a saved model
folder and declares it in `config.json["custom_pipelines"]` (converted checkpoints ship it), after which

    pipeline("visual-question-answering", model=folder, trust_remote_code=True)(video="clip.mp4", question="...")

returns `[{"answer": "..."}]`. With the package installed, no remote code is needed:

    pipeline("image-text-to-text", model=folder, pipeline_class=VideoLlama2VisualQuestionAnsweringPipeline)

transformers' own image-text-to-text pipeline takes audio chat items too (`{"type": "audio", "path": ...}`, and
`load_audio_from_video=True` to hear videos with their sound), since it formats chats with the model's processor.

This module imports only from transformers and the standard library, so it can ship as remote code.
"""

from numbers import Number
from typing import Any

from transformers.pipelines.image_text_to_text import ImageTextToTextPipeline


class VideoLlama2VisualQuestionAnsweringPipeline(ImageTextToTextPipeline):
    """Answers a question about an image, a video or a sound: `pipe(image=..., question=...)`,
    `pipe(video=..., question=...)`, and with an audio-visual model `pipe(audio=..., question=...)` or
    `pipe(video=..., question=..., with_audio=True)` (the video heard with its sound).

    `image` is a path, URL or PIL image; `video` a path or URL, a decoded array `(frames, height, width, 3)`, or a
    list of frames; `audio` a path or URL, or a 16 kHz waveform. Lists of media (with one question, or one question
    each) are answered as a batch, as are lists of `{"image"|"video"|"audio": ..., "question": ...}` dicts. Other
    keywords go to the image-text-to-text pipeline: `max_new_tokens=`, `generate_kwargs={...}`,
    `processor_kwargs={"num_frames": 16}`.

    Returns `[{"answer": str}]` for one question and a list of those for a batch (the output of the removed
    transformers VQA pipeline, with one generated answer instead of scored labels).
    """

    def __call__(
        self,
        image=None,
        question: str | list[str] | None = None,
        video=None,
        audio=None,
        with_audio: bool = False,
        **kwargs: Any,
    ):
        inputs = kwargs.pop("inputs", None)
        if isinstance(image, dict) or (isinstance(image, list) and image and isinstance(image[0], dict)):
            inputs, image = image, None
        if inputs is not None:
            single = isinstance(inputs, dict)
            items = [inputs] if single else list(inputs)
            requests = [
                self._request(item.get("image"), item.get("video"), item.get("question"), item.get("audio"))
                for item in items
            ]
        else:
            requests, single = self._requests(image, video, question, audio)
        sound = [{"type": "audio"}] if with_audio else []  # marks where each video's sound goes
        chats = [
            [
                {
                    "role": "user",
                    "content": [media, *(sound if media["type"] == "video" else []), {"type": "text", "text": text}],
                }
            ]
            for media, text in requests
        ]
        kwargs.setdefault("return_full_text", False)
        if with_audio:
            kwargs["load_audio_from_video"] = True
        outputs = super().__call__(text=chats, **kwargs)
        answers = [[{"answer": self._answer(output)} for output in per_chat] for per_chat in outputs]
        return answers[0] if single else answers

    @staticmethod
    def _request(image=None, video=None, question=None, audio=None) -> tuple[dict, str]:
        given = [
            (kind, media)
            for kind, media in (("image", image), ("video", video), ("audio", audio))
            if media is not None
        ]
        if len(given) != 1:
            raise ValueError("Give exactly one of `image`, `video` and `audio` with each question.")
        if not isinstance(question, str):
            raise ValueError(f"`question` must be a string, got {type(question).__name__}.")
        kind, media = given[0]
        return {"type": kind, kind: media}, question

    def _requests(self, image, video, question, audio=None) -> tuple[list[tuple[dict, str]], bool]:
        kind = "video" if video is not None else "audio" if audio is not None else "image"
        media = {"image": image, "video": video, "audio": audio}[kind]
        batched_media = isinstance(media, (list, tuple)) and not self._is_frame_list(media, kind)
        batched_questions = isinstance(question, (list, tuple))
        if not batched_media and not batched_questions:
            return [self._request(image, video, question, audio)], True
        media_list = list(media) if batched_media else None
        questions = list(question) if batched_questions else None
        if media_list is None:
            media_list = [media] * len(questions)
        if questions is None:
            questions = [question] * len(media_list)
        if len(media_list) != len(questions):
            raise ValueError(f"Got {len(media_list)} images/videos/sounds but {len(questions)} questions.")
        return [self._request(**{kind: item}, question=text) for item, text in zip(media_list, questions)], False

    @staticmethod
    def _is_frame_list(media, kind: str) -> bool:
        """A video given as a list of frames (images or arrays), or a waveform given as a list of samples, rather
        than a batch of videos or sounds."""
        if kind == "image" or not media:
            return False
        first = media[0]
        if kind == "audio":
            return isinstance(first, Number)  # also numpy scalars such as np.float32
        return not isinstance(first, (str, list, tuple)) and getattr(first, "ndim", 3) == 3

    @staticmethod
    def _answer(output: dict) -> str:
        text = output.get("generated_text", "")
        if isinstance(text, list):  # a chat (return_full_text=True): the new assistant message
            content = text[-1]["content"]
            text = content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
        return text.strip()


__all__ = ["VideoLlama2VisualQuestionAnsweringPipeline"]
