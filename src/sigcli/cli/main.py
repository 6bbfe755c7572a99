"""Entry point: parse, dispatch to one command module, map SigError to an exit code and a message."""

from __future__ import annotations

import importlib
import os
import sys

from .._version import __version__
from ..core.errors import SigError

COMMANDS = (
    "login", "logout", "proxy", "request", "run", "get", "status", "providers", "rename", "remove",
    "remote", "sync", "watch", "init", "doctor", "config", "completion",
)
ALIASES = {"ls": "providers", "rm": "remove", "mv": "rename", "whoami": "status"}


def _print_error(err: SigError, json_errors: bool, verbose: bool) -> None:
    if json_errors:
        from ..core.jsonio import dumps

        sys.stderr.write(dumps({"error": err.to_dict()}) + "\n")
        return
    from ..core.text import printable

    # A message may quote a server, a remote or a file: its control characters are shown, not obeyed.
    code = f" [{err.code}]" if verbose else ""
    sys.stderr.write(f"Error{code}: {printable(err.message)}\n")
    if err.hint:
        sys.stderr.write(f"Hint: {printable(err.hint)}\n")


def _wants_json(argv: list[str]) -> bool:
    head = argv[: argv.index("--")] if "--" in argv else argv
    for i, tok in enumerate(head):
        if tok in ("--format=json", "--json") or (tok == "--format" and i + 1 < len(head) and head[i + 1] == "json"):
            return True
    return False


def _unknown_command(word: str) -> int:
    from ..core.suggest import suggest

    close = suggest(word, [*COMMANDS, *ALIASES])
    hint = f"did you mean `sig {close}`? (run `sig --help` to list commands)" if close else \
        "run `sig --help` to list commands"
    from ..core.text import printable

    sys.stderr.write(f'Error: unknown command "{printable(word, one_line=True)}"\nHint: {hint}\n')
    return 1


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch to one command module, map a SigError to its message and exit code."""
    from .streams import setup

    setup()  # an ASCII or Latin-1 terminal gets escapes and ASCII glyphs, never a UnicodeEncodeError
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.getfilesystemencoding() != "utf-8":
        # A C locale decodes argv as ASCII, keeping other bytes as lone surrogates that no file or log can
        # hold; terminals send UTF-8, so read them as UTF-8 (what Python's UTF-8 mode would have done).
        argv = [os.fsencode(a).decode("utf-8", "surrogateescape") if not a.isascii() else a for a in argv]
    head = argv[: argv.index("--")] if "--" in argv else argv
    verbose = "--verbose" in head
    json_errors = _wants_json(argv)
    if not argv or argv[0] in ("help", "--help", "-h"):
        from .help import MAIN_HELP, command_help
        from .streams import for_stdout

        if len(argv) > 1 and argv[0] == "help":
            text = command_help(ALIASES.get(argv[1], argv[1]))
            if text is None:
                return _unknown_command(argv[1])
            sys.stdout.write(for_stdout(text))
            return 0
        sys.stdout.write(for_stdout(MAIN_HELP))
        return 0
    # Global options may come before the command: `sig --verbose status`.
    lead = 0
    while (lead < len(argv) - 1 and argv[lead] in ("--verbose", "--format", "--json")) or (
        lead < len(argv) - 1 and argv[lead].startswith("--format=")
    ):
        lead += 2 if argv[lead] == "--format" else 1
    if 0 < lead < len(argv) and not argv[lead].startswith("-"):
        argv = [argv[lead], *argv[:lead], *argv[lead + 1 :]]
    if argv[0] in ("--version", "-V"):
        sys.stdout.write(f"sig {__version__}\n")
        return 0
    command = ALIASES.get(argv[0], argv[0])
    if command not in COMMANDS:
        if argv[0].startswith("-"):
            from ..core.text import printable

            sys.stderr.write(f"Error: {printable(argv[0], one_line=True)} needs a command before it\n"
                             "Hint: run `sig --help`\n")
            return 1
        return _unknown_command(argv[0])
    module = importlib.import_module(f".commands.{command}", __package__)
    try:
        from .args import parse

        args = parse(command, argv[1:], module.FLAGS, getattr(module, "SHORT", None))
        if args.flag("help"):
            from .help import command_help
            from .streams import for_stdout

            sys.stdout.write(for_stdout(command_help(command) or ""))
            return 0
        if args.flag("version"):
            sys.stdout.write(f"sig {__version__}\n")
            return 0
        from .app import App

        app = App(verbose=verbose)
        return int(module.run(args, app))
    except SigError as err:
        _print_error(err, json_errors, verbose)
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `sig status | head -1`): not an error of ours.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except Exception as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        internal = SigError(
            "GENERAL_ERROR",
            f"unexpected internal error ({type(exc).__name__})",
            "run again with --verbose for details, and report it at the project's issue tracker",
        )
        _print_error(internal, json_errors, verbose)
        return 1
