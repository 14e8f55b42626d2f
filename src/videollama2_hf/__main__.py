"""`python -m videollama2_hf`: the `videollama2-hf` command (after the package's own import, so it starts slower)."""

import sys

from .cli import main


sys.exit(main())
