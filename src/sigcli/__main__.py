"""`sig` and `python -m sigcli`: hand over to the CLI, importing nothing else first."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI and exit with its status (stdout flushed; a closed pipe is not an error)."""
    from .cli.main import main as cli_main

    code = cli_main()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass
    sys.exit(code)


if __name__ == "__main__":
    main()
