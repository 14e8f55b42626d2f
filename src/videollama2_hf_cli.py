"""Entry point of the `videollama2-hf` command.

It lives outside the `videollama2_hf` package on purpose: importing the package registers VideoLLaMA2 with the
transformers Auto classes, which imports torch (seconds). The launcher asks the package to skip that, so that
`--help`, `--version`, `info` and `convert` start at once; `ask` registers the Auto classes it loads through
(`convert --verify` uses the model class itself).
"""

import os
import sys


INTERRUPTED = 130


def main() -> int:
    os.environ["VIDEOLLAMA2_HF_DEFER_REGISTRATION"] = "1"  # read (and removed) by videollama2_hf/__init__.py
    try:
        from videollama2_hf.cli import main as cli_main
    except KeyboardInterrupt:  # Ctrl-C while Python imports the command
        print("videollama2-hf: interrupted.", file=sys.stderr)
        code = INTERRUPTED
    else:
        code = cli_main()
    if code == INTERRUPTED:
        # CPython re-raises SIGINT at exit (status -2 instead of 130) when the Ctrl-C went through code that an
        # extension module ran while being imported, even though the command handled it: leave right away.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)
    return code


if __name__ == "__main__":
    sys.exit(main())
