# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`videollama2-hf serve`: transformers' own OpenAI-compatible server (`transformers serve`) for a converted
VideoLLaMA2 checkpoint, with the package's classes.

`transformers serve` finds a model's class and what it accepts (text, images and videos, or audio too) in static
tables of transformers' own models: `MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES` (every video is then heard with its sound
track) and `MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES` (the class is then looked up by name on the `transformers`
module). `register_for_serving` adds VideoLLaMA2 to the one that fits the checkpoint: an audio-visual checkpoint is
multimodal, any other one image-text-to-text, so that it never gets `load_audio_from_video=True`.

Since transformers 5.25 the model loads in a process of its own, started with `spawn`: there the tables are
transformers' again. The server's loader is swapped for `RegisteringModelLoader`, which registers in that process
before loading (the process imports this module to unpickle the loader).
"""

import json
import sys


# transformers' server needs FastAPI, uvicorn, pydantic and openai (the [serve] extra); its modules import them.
try:
    import fastapi  # noqa: F401
    import openai  # noqa: F401
    import pydantic  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:
    raise ImportError(
        f"videollama2-hf serve needs transformers' serving dependencies ({error.name} is missing): pip install "
        '"videollama2-hf[serve]"'
    ) from None

from transformers.cli.serve import Serve  # noqa: E402


MODEL_CLASS_NAME = "VideoLlama2ForConditionalGeneration"
# `videollama2-hf serve` options that differ from `transformers serve`'s
DEFAULT_HOST = "127.0.0.1"


def register_for_serving(audio: bool) -> None:
    """Make `transformers serve` load VideoLLaMA2 and accept what the checkpoint takes: images and videos, and with
    `audio` (an audio-visual checkpoint) audio and the sound of videos. Idempotent, for this process."""
    import transformers.cli.serving.model_manager as model_manager
    from transformers.models.auto import modeling_auto

    from .auto_registration import register_auto_classes
    from .modeling_videollama2 import VideoLlama2ForConditionalGeneration

    register_auto_classes()
    served, other = (
        modeling_auto.MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES,
        modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )
    if not audio:
        served, other = other, served
    # Keyed by a model type transformers does not have: its Auto mappings only read the keys of its config table.
    other.pop("videollama2", None)
    served["videollama2"] = MODEL_CLASS_NAME
    # The image-text-to-text path loads `getattr(transformers, architectures[0])`, on the module object the server's
    # module imported (`processing_utils` puts a second `transformers` module in `sys.modules`).
    setattr(model_manager.transformers, MODEL_CLASS_NAME, VideoLlama2ForConditionalGeneration)


def _loader_class():
    """transformers >= 5.25 loads the model in a spawned process through a `ModelLoader`; older ones in-process."""
    from transformers.cli.serving import model_manager

    return getattr(model_manager, "ModelLoader", None)


_ModelLoader = _loader_class()

if _ModelLoader is not None:

    class RegisteringModelLoader(_ModelLoader):
        """transformers' loader, registering VideoLLaMA2 (`register_for_serving`) in the process that loads."""

        audio = False

        def load_model_and_processor(self, model_id, *args, **kwargs):
            register_for_serving(self.audio)
            return super().load_model_and_processor(model_id, *args, **kwargs)


class VideoLlama2Serve(Serve):
    """`transformers serve`, with a loader that registers VideoLLaMA2 in the model's own process (5.25+)."""

    audio = False

    def _use_registering_loader(self) -> None:
        """In the main process; the API servers of `--api-server-count` get the swapped loader with `self`."""
        if not isinstance(self.loader, RegisteringModelLoader):
            self.loader.__class__ = RegisteringModelLoader
            self.loader.audio = self.audio

    def run(self, *args, **kwargs):
        self._use_registering_loader()
        register_for_serving(self.loader.audio)  # again in an API server, a spawned process
        return super().run(*args, **kwargs)

    def run_api_servers(self, *args, **kwargs):
        self._use_registering_loader()
        return super().run_api_servers(*args, **kwargs)


def _option_value(options: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` in `options` (the last one given), else None."""
    value = None
    for index, option in enumerate(options):
        if option == name and index + 1 < len(options):
            value = options[index + 1]
        elif option.startswith(name + "="):
            value = option.split("=", 1)[1]
    return value


def _without_option(options: list[str], name: str) -> list[str]:
    kept, skip = [], False
    for option in options:
        if skip:
            skip = False
        elif option == name:
            skip = True
        elif not option.startswith(name + "="):
            kept.append(option)
    return kept


def serve_arguments(model: str, options: list[str]) -> list[str]:
    """`transformers serve` arguments: `model` first, `--host 127.0.0.1` unless given, and the chat template's
    `num_frames` left to the checkpoint (transformers' server otherwise asks every processor for 32 frames), unless
    `--chat-template-kwargs` sets it."""
    if "--trust-remote-code" in options:
        raise ValueError(
            "videollama2-hf serve runs the installed package's code, not the folder's remote code: drop "
            "--trust-remote-code (or use `transformers serve` itself)."
        )
    template_kwargs = _option_value(options, "--chat-template-kwargs")
    try:
        template_kwargs = json.loads(template_kwargs) if template_kwargs else {}
    except ValueError as error:
        raise ValueError(f"--chat-template-kwargs is not valid JSON ({error}).") from None
    if not isinstance(template_kwargs, dict):
        raise ValueError("--chat-template-kwargs must be a JSON object, e.g. '{\"num_frames\": 16}'.")
    template_kwargs.setdefault("num_frames", None)  # None: the video processor's own count
    options = _without_option(options, "--chat-template-kwargs")
    host = [] if _option_value(options, "--host") is not None else ["--host", DEFAULT_HOST]
    return [model, *host, "--chat-template-kwargs", json.dumps(template_kwargs), *options]


def served_config(model: str):
    """The checkpoint's config, read before the server starts: a converted VideoLLaMA2 checkpoint, or one clear
    error."""
    from transformers import AutoConfig

    from .auto_registration import register_auto_classes
    from .configuration_videollama2 import VideoLlama2Config
    from .inference import check_model_folder

    check_model_folder(model)
    register_auto_classes()
    config = AutoConfig.from_pretrained(model)
    if not isinstance(config, VideoLlama2Config) or config.model_type != VideoLlama2Config.model_type:
        raise ValueError(
            f"{model} is a VideoLLaMA2 checkpoint in the original layout; serve a converted one: "
            f"`videollama2-hf convert {model} OUTPUT_DIR`, then `videollama2-hf serve OUTPUT_DIR`."
        )
    return config


def serve(model: str, options: list[str], prog_name: str = "videollama2-hf serve") -> int:
    """Run transformers' server for `model` with `options` (any of `transformers serve`'s) until it stops; returns
    the exit code."""
    import typer

    arguments = serve_arguments(model, options)
    config = served_config(model)
    audio = config.audio_config is not None
    register_for_serving(audio)
    VideoLlama2Serve.audio = audio
    app = typer.Typer(add_completion=False)
    app.command()(VideoLlama2Serve)
    command = typer.main.get_command(app)
    try:
        result = command.main(arguments, prog_name=prog_name, standalone_mode=False)
    except Exception as error:  # click's, from click itself or the copy recent typer releases vendor
        if type(error).__name__ == "Abort":  # Ctrl+C before the server started
            return 130
        if not callable(getattr(error, "format_message", None)):
            raise
        print(f"{prog_name}: error: {' '.join(error.format_message().split())}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


__all__ = ["VideoLlama2Serve", "register_for_serving", "serve", "serve_arguments"]
