# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`videollama2-hf` command line: one `_add_<name>_parser` / `_run_<name>` pair per subcommand, each calling library
code. Heavy libraries are imported inside the `_run_*` functions, so `--help` and `convert --list-presets` are instant.

User errors end with one line on stderr naming the problem and the fix: exit code 1 for runtime errors (missing file
or model, bad checkpoint, no network, ...), 2 for usage errors, 130 when interrupted.
"""

import argparse
import json
import logging
import os
import signal
import sys

from . import __version__


def _add_convert_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a released VideoLLaMA2 checkpoint into a transformers-5 folder (and push it to the Hub)",
        description=(
            "Convert a DAMO-NLP-SG VideoLLaMA2 checkpoint (Hub repo id or local folder in the original layout) into "
            "a self-contained transformers-5 folder: renamed safetensors shards (bytes copied unchanged), config.json "
            "with remote code (auto_map), generation_config.json, processor and tokenizer files, chat template and a "
            "model card. Nothing is written to OUTPUT_DIR unless the whole conversion succeeds."
        ),
    )
    parser.add_argument("source", nargs="?", help="Hub repo id (e.g. DAMO-NLP-SG/VideoLLaMA2-7B) or local folder")
    parser.add_argument("output_dir", nargs="?", help="folder to create (must be absent or empty)")
    parser.add_argument("--preset", help="preset name (default: detected from the source name or its config.json)")
    parser.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    parser.add_argument(
        "--vision-tower",
        metavar="DIR_OR_REPO",
        help="vision tower folder or repo (config.json + preprocessor_config.json; Base checkpoints: its weights "
        "too). Default: the preset's settings, or the repo named by mm_vision_tower",
    )
    parser.add_argument(
        "--language-model",
        metavar="DIR_OR_REPO",
        help="language model of a Base checkpoint (default: config.json _name_or_path, else the preset's)",
    )
    parser.add_argument("--source-revision", help="revision of a Hub source to download")
    parser.add_argument(
        "--max-shard-size", help="re-shard to this size (e.g. 5GB); default: one shard per source file"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier conversion in OUTPUT_DIR (a folder holding anything else is never touched)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="reload the result, compare every tensor with the source bit for bit and run one forward pass "
        "(loads the whole model in memory)",
    )
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the result to this Hub repo")
    parser.add_argument("--private", action="store_true", default=None, help="create the Hub repo as private")
    parser.add_argument("--revision", help="branch of the Hub repo to push to (created if missing)")
    parser.add_argument(
        "--commit-message",
        help="commit message of the upload (huggingface_hub >= 2 uploads with upload_folder, which is resumable; "
        "with an older huggingface_hub, giving a message switches from upload_large_folder, which takes none, "
        "to upload_folder)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, warnings and errors only")
    parser.set_defaults(run=_run_convert, parser=parser)


def _run_convert(args) -> int:
    from .convert_videollama2_weights_to_hf import convert_videollama2_checkpoint
    from .original_layout import format_presets

    if args.list_presets:
        print(format_presets())
        return 0
    if not args.source or not args.output_dir:
        args.parser.error("convert needs SOURCE and OUTPUT_DIR (or --list-presets)")
    result = convert_videollama2_checkpoint(
        args.source,
        args.output_dir,
        preset=args.preset,
        vision_tower=args.vision_tower,
        language_model=args.language_model,
        overwrite=args.overwrite,
        verify=args.verify,
        push_to_hub=args.push_to_hub,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        source_revision=args.source_revision,
        max_shard_size=args.max_shard_size,
        progress=not args.quiet,
    )
    summary = {
        "output_dir": str(result.output_dir),
        "kind": result.kind,
        "preset": result.preset,
        "tensors": result.num_tensors,
        "bytes": result.total_bytes,
        "shards": len(result.shards),
        "token_ids": result.token_ids,
        "timings_s": {key: round(value, 3) for key, value in result.timings.items()},
    }
    if result.verification is not None:
        summary["verification"] = result.verification
    if result.repo_url:
        summary["repo_url"] = result.repo_url
    print(json.dumps(summary, indent=2, default=str))
    return 0


_ASK_EXAMPLES = """examples:
  videollama2-hf ask --video clip.mp4 "What happens in this video?"
  videollama2-hf ask --model ./VideoLLaMA2-7B-16F-hf --image photo.jpg "Describe the image."
  videollama2-hf ask --model ./VideoLLaMA2.1-7B-16F --video clip.mp4 --num-frames 16 --dtype float32 \\
      --do-sample --temperature 0.7 --top-p 0.9 "What is the person doing?"
  videollama2-hf ask --model DAMO-NLP-SG/VideoLLaMA2.1-7B-AV --audio sound.wav "What can you hear?"
  videollama2-hf ask --model DAMO-NLP-SG/VideoLLaMA2.1-7B-AV --video clip.mp4 --with-audio "What is said?"

--model takes a converted folder or repo, or a released DAMO-NLP-SG checkpoint (loaded directly, no conversion).
Without network access, download the checkpoint first and pass its folder.
"""


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Greedy decoding unless --do-sample, as the original's `mm_infer`; shared by `ask` and `batch`."""
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, help="sampling temperature (with --do-sample)")
    parser.add_argument("--top-p", type=float, help="nucleus sampling threshold (with --do-sample)")


def _check_sampling_arguments(args, parser: argparse.ArgumentParser) -> None:
    if (args.temperature is not None or args.top_p is not None) and not args.do_sample:
        parser.error("--temperature/--top-p need --do-sample")


def _add_ask_parser(subparsers) -> None:
    from .inference import DEFAULT_MODEL, DTYPES

    parser = subparsers.add_parser(
        "ask",
        help="answer a question about a video, an image or a sound, streaming the answer",
        description="Answer a question about a video, an image or (with an audio-visual checkpoint) an audio file "
        "or a video with its sound; the answer is streamed to stdout as it is generated (greedy decoding unless "
        "--do-sample).",
        epilog=_ASK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", help="the question to ask")
    media = parser.add_mutually_exclusive_group(required=True)
    media.add_argument("--video", metavar="PATH_OR_URL", help="video file (mp4, webm, gif, ...), frame folder or URL")
    media.add_argument("--image", metavar="PATH_OR_URL", help="image file or URL")
    media.add_argument(
        "--audio", metavar="PATH_OR_URL", help="audio file or URL (wav, flac, mp3, ...; audio-visual checkpoints)"
    )
    parser.add_argument(
        "--with-audio",
        action="store_true",
        help="hear the video with its sound track (audio-visual checkpoints such as VideoLLaMA2.1-7B-AV)",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="DIR_OR_REPO",
        help=f"converted or released checkpoint, local folder or Hub repo id (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--num-frames", type=int, metavar="N", help="frames sampled from the video (default: the model's)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=512, metavar="N", help="answer length limit (default: 512)"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="weights dtype (default: auto = the checkpoint's, e.g. bfloat16)",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1, mps, ... (default: auto = cuda if available)"
    )
    _add_sampling_arguments(parser)
    parser.add_argument("--seed", type=int, help="random seed, for reproducible sampling")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.set_defaults(run=_run_ask, parser=parser)


def _run_ask(args) -> int:
    parser = args.parser
    if not args.question.strip():
        parser.error("the question is empty")
    if args.num_frames is not None and args.num_frames < 1:
        parser.error("--num-frames must be positive")
    if args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be positive")
    _check_sampling_arguments(args, parser)
    if args.with_audio and args.video is None:
        parser.error("--with-audio hears the sound of a video: it needs --video")
    from .inference import ask, check_model_folder, load_media, load_model_and_processor

    # cheap checks before the model loads
    media = load_media(video=args.video, image=args.image, audio=args.audio, with_audio=args.with_audio)
    hears = args.audio is not None or args.with_audio
    check_model_folder(args.model, audio=hears)
    from transformers import TextStreamer
    from transformers.utils import logging as hf_logging

    from .auto_registration import register_auto_classes

    register_auto_classes()
    hf_logging.set_verbosity_error()
    if args.quiet:
        hf_logging.disable_progress_bar()
    if args.seed is not None:
        from transformers import set_seed

        set_seed(args.seed)
    model, processor = load_model_and_processor(args.model, dtype=args.dtype, device=args.device, audio=hears)
    streamer = TextStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
    ask(
        model,
        processor,
        args.question,
        num_frames=args.num_frames,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
        streamer=streamer,
        with_audio=args.with_audio,
        **{media["type"]: media},
    )
    return 0


_BATCH_EXAMPLES = """examples:
  videollama2-hf batch --model ./VideoLLaMA2-7B-16F-hf --input clips/ --output answers.jsonl \\
      --question "Describe the video in detail."
  videollama2-hf batch --model ./VideoLLaMA2.1-7B-AV --input questions.jsonl --output answers.jsonl --with-audio
  accelerate launch --num_processes 8 -m videollama2_hf batch --model ./VideoLLaMA2-7B-16F-hf \\
      --input questions.csv --output answers.jsonl --batch-size 16

INPUT is a folder (every video, image and audio file below it, by extension; id = the path relative to the folder)
or a .jsonl/.csv manifest of rows {"id", "video" | "image" | "audio", "question"} (relative paths are relative to
the manifest's folder; a row's question wins over --question). One JSON line per item is appended to OUTPUT as its
batch finishes: id, the media, question, answer, prompt_tokens, answer_tokens, prepare_s, generate_s, batch_size,
or "error" for an item that could not be read. Killed at any moment, the same command resumes where it stopped;
under `accelerate launch` each process writes OUTPUT.shard<rank>, merged into OUTPUT (in input order) at the end.
"""


def _add_batch_parser(subparsers) -> None:
    from .inference import DTYPES

    parser = subparsers.add_parser(
        "batch",
        help="answer a question about every video, image or sound of a folder or manifest (resumable, shardable)",
        description="Answer one question per item of a folder of media or a JSONL/CSV manifest, appending one JSON "
        "line per item to OUTPUT. Media of the next batches are decoded in worker processes while the model answers "
        "the current one; rows are left-padded into batches (greedy answers equal `ask`'s). Killed at any moment, "
        "the same command skips the items already answered. Under `accelerate launch`, the items are split between "
        "the processes, one device each.",
        epilog=_BATCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="DIR_OR_REPO", help="converted or released checkpoint")
    parser.add_argument("--input", required=True, metavar="INPUT", help="folder of media, or a .jsonl/.csv manifest")
    parser.add_argument("--output", required=True, metavar="OUTPUT", help="JSONL file of answers (appended to)")
    parser.add_argument("--question", help="the question asked about each item (rows may carry their own)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="items per batch (default: 8)")
    parser.add_argument(
        "--num-frames", type=int, metavar="N", help="frames sampled from each video (default: the model's)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=512, metavar="N", help="answer length limit (default: 512)"
    )
    parser.add_argument(
        "--with-audio", action="store_true", help="hear each video with its sound track (audio-visual checkpoints)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start over: remove OUTPUT and its shards (nothing else) first"
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        metavar="N",
        help="processes decoding media beside each model process; 0 decodes in the model's process "
        "(default: the machine's CPUs per process, 1 to 4)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, mps, ... (default: auto = cuda if available; under accelerate launch, each "
        "process's own)",
    )
    parser.add_argument(
        "--dtype", choices=DTYPES, default="auto", help="weights dtype (default: auto = the checkpoint's)"
    )
    parser.add_argument("--num-threads", type=int, metavar="N", help="torch CPU threads per process")
    _add_sampling_arguments(parser)
    parser.add_argument("--seed", type=int, help="random seed (process k of a launch uses SEED + k)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, warnings and errors only")
    parser.set_defaults(run=_run_batch, parser=parser)


def _run_batch(args) -> int:
    parser = args.parser
    if args.question is not None and not args.question.strip():
        parser.error("the question is empty")
    for flag, value, least in (
        ("--batch-size", args.batch_size, 1),
        ("--num-frames", args.num_frames, 1),
        ("--max-new-tokens", args.max_new_tokens, 1),
        ("--num-workers", args.num_workers, 0),
        ("--num-threads", args.num_threads, 1),
    ):
        if value is not None and value < least:
            parser.error(f"{flag} must be {'positive' if least else 'zero or more'}")
    _check_sampling_arguments(args, parser)
    from transformers.utils import logging as hf_logging

    from .auto_registration import register_auto_classes
    from .batch_inference import run_batch

    register_auto_classes()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    summary = run_batch(
        args.model,
        args.input,
        args.output,
        question=args.question,
        batch_size=args.batch_size,
        num_frames=args.num_frames,
        max_new_tokens=args.max_new_tokens,
        with_audio=args.with_audio,
        overwrite=args.overwrite,
        num_workers=args.num_workers,
        device=args.device,
        dtype=args.dtype,
        num_threads=args.num_threads,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        progress=not args.quiet,
    )
    if summary:
        print(json.dumps(summary), flush=True)
    return 0


def _add_info_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a checkpoint folder (architecture, tokens per video, parameters per component, dtype)",
        description="Describe a VideoLLaMA2 checkpoint folder, converted or in the original layout, from its "
        "config.json and weight-file headers (nothing is loaded, so it is instant even for 72B).",
        epilog="examples:\n"
        "  videollama2-hf info ./VideoLLaMA2-7B-16F-hf\n"
        "  videollama2-hf info ./VideoLLaMA2-7B --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", metavar="DIR", help="checkpoint folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=_run_info, parser=parser)


def _run_info(args) -> int:
    import dataclasses

    from .checkpoint_info import describe_checkpoint, format_checkpoint_info

    info = describe_checkpoint(args.folder)
    print(json.dumps(dataclasses.asdict(info), indent=2) if args.json else format_checkpoint_info(info))
    return 0


_SERVE_EXAMPLES = """examples:
  videollama2-hf serve ./VideoLLaMA2-7B-16F-hf
  videollama2-hf serve ./VideoLLaMA2.1-7B-AV-hf --port 8001 --dtype bfloat16 --device cuda

Every `transformers serve` option may follow MODEL (`transformers serve --help` lists them). The defaults that differ:
--host 127.0.0.1 (this machine only; --host 0.0.0.0 listens on every interface) and the checkpoint's own number of
video frames (--chat-template-kwargs '{"num_frames": N}' sets another). Clients name the model as given here.
On a small or busy CPU machine, start it with OMP_NUM_THREADS=1 (the API and model processes each start a torch pool).
Needs transformers' serving dependencies: pip install "videollama2-hf[serve]". See docs/serving.md.
"""


def _add_serve_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a converted checkpoint with transformers' OpenAI-compatible server",
        description="Serve a converted VideoLLaMA2 checkpoint with `transformers serve` (chat completions for text, "
        "images, videos and, with an audio-visual checkpoint, audio and the sound of videos), using this package's "
        "classes.",
        epilog=_SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="converted checkpoint: local folder or Hub repo id")
    parser.add_argument("serve_options", nargs=argparse.REMAINDER, metavar="...", help="`transformers serve` options")
    parser.set_defaults(run=_run_serve, parser=parser)


def _run_serve(args) -> int:
    from .serving import serve

    return serve(args.model, args.serve_options)


def _add_export_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-transformers",
        help="add the model to a transformers source tree, as a pull request to transformers would",
        description="Write VideoLLaMA2 into TREE, an unpacked transformers source tree (sdist or git clone) of the "
        "installed version: src/transformers/models/videollama2/ generated from this package's model files and "
        "conversion script, the entries of transformers' Auto tables, tests/models/videollama2/ and "
        "docs/source/en/model_doc/videollama2.md. Rerunning it gives the same tree.",
        epilog="example:\n"
        "  pip download --no-deps --no-binary :all: transformers==$(python -c 'import transformers as t; "
        "print(t.__version__)')\n"
        "  tar xzf transformers-*.tar.gz && videollama2-hf export-transformers transformers-*/\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("tree", metavar="TREE", help="transformers source tree (holds src/transformers)")
    parser.set_defaults(run=_run_export, parser=parser)


def _run_export(args) -> int:
    from .export_transformers import check_tree, export_transformers

    check_tree(args.tree)  # before the heavy imports
    written = export_transformers(args.tree)
    print(f"wrote {len(written)} files into {args.tree}")
    return 0


_EPILOG = """commands:
  convert               convert a released checkpoint to the transformers layout (and push it to the Hub)
  ask                   answer a question about a video, an image or a sound
  batch                 answer a question about every item of a folder or manifest (resumable, shardable)
  info                  describe a checkpoint folder
  export-transformers   add the model to a transformers source tree, as a pull request would
  serve                 serve a converted checkpoint with an OpenAI-compatible API

examples:
  videollama2-hf convert DAMO-NLP-SG/VideoLLaMA2-7B-16F ./VideoLLaMA2-7B-16F-hf --verify
  videollama2-hf ask --model ./VideoLLaMA2-7B-16F-hf --video clip.mp4 "What happens?"
  videollama2-hf batch --model ./VideoLLaMA2-7B-16F-hf --input clips/ --output answers.jsonl --question "Why?"
  videollama2-hf info ./VideoLLaMA2-7B-16F-hf
  videollama2-hf serve ./VideoLLaMA2-7B-16F-hf --port 8000

exit codes: 0 success, 1 runtime error (missing file or model, bad checkpoint, no network, ...), 2 usage error,
130 interrupted. `videollama2-hf COMMAND --help` describes each command.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videollama2-hf",
        description="VideoLLaMA2 for transformers 5",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_convert_parser(subparsers)
    _add_ask_parser(subparsers)
    _add_batch_parser(subparsers)
    _add_info_parser(subparsers)
    _add_serve_parser(subparsers)
    _add_export_parser(subparsers)
    return parser


def _setup_logging(quiet: bool) -> None:
    # Our loggers are children of transformers' library logger ("transformers.videollama2_hf..."); a handler of our
    # own keeps the CLI's messages visible whether or not transformers has configured its logger yet.
    log = logging.getLogger("transformers.videollama2_hf")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[videollama2-hf] %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


# Errors a user can fix (a path, a download, a checkpoint, an argument); anything else is a bug and keeps a traceback.
_USER_ERRORS = (ValueError, OSError, KeyError, ImportError)


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    # SIGTERM -> SystemExit, so a conversion's temporary folder is removed as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        detail = {
            "convert": "; nothing was written to the output folder",
            "batch": "; the answers written so far are kept: run the same command to resume",
        }.get(args.command, "")
        print(f"videollama2-hf: interrupted{detail}.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `videollama2-hf ... | head`: the reader left; end quietly like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except _USER_ERRORS as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"videollama2-hf {args.command}: error: {message}", file=sys.stderr)
        return 1


__all__ = ["main"]
