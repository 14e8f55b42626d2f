# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`videollama2-hf` command line: one `_add_<name>_parser` / `_run_<name>` pair per subcommand.

Heavy libraries are imported inside the `_run_*` functions, so `--help` and `convert --list-presets` stay fast.
"""

import argparse
import json
import logging
import signal
import sys


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
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUTPUT_DIR")
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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings and errors only")
    parser.set_defaults(run=_run_convert)


def _run_convert(args, parser) -> int:
    from .convert_videollama2_weights_to_hf import convert_videollama2_checkpoint, format_presets

    if args.list_presets:
        print(format_presets())
        return 0
    if not args.source or not args.output_dir:
        parser.error("convert needs SOURCE and OUTPUT_DIR (or --list-presets)")
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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videollama2-hf", description="VideoLLaMA2 for transformers 5")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_convert_parser(subparsers)
    return parser


def _setup_logging(quiet: bool) -> None:
    # Our loggers live under "transformers." (see convert_videollama2_weights_to_hf.py); a handler of our own keeps
    # the CLI's messages visible whether or not transformers has configured its root logger yet.
    log = logging.getLogger("transformers.videollama2_hf")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[videollama2-hf] %(levelname)s: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    # SIGTERM -> SystemExit, so the temporary folder is removed as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return args.run(args, parser)
    except KeyboardInterrupt:
        print("videollama2-hf: interrupted; nothing was written to the output folder.", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError) as error:
        print(f"videollama2-hf {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
