"""Argument parsing: flags anywhere before `--`, `--flag=value` and `--flag value`, `--` ends options.

Declarative and tiny on purpose (argparse costs start-up time and cannot express `run P -- cmd` well).
A command declares its flags as {name: kind}; kind is "bool", "value" or "multi" (repeatable value),
and may declare short forms as {"-X": name} (`-X POST` and `-XPOST` both work for a value).
`--json` is accepted wherever `--format` is, as `--format json` (as gh and most CLIs spell it).
A mistyped flag gets a "did you mean" from difflib, imported only on that error path.
"""

from __future__ import annotations

from ..core.errors import SigError, usage_error

GLOBAL_FLAGS = {"help": "bool", "verbose": "bool", "version": "bool"}
SHORT = {"-h": "help"}


class Args:
    """The parsed command line: positionals, what follows `--`, and flags by name."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.positionals: list[str] = []
        self.rest: list[str] | None = None  # everything after `--`, when given
        self.flags: dict[str, str | bool | list[str]] = {}
        self.spelled: dict[str, str] = {}  # flag name -> how it was given (--method, -X, --json)

    def flag(self, name: str) -> bool:
        """Whether a bool flag was given."""
        return bool(self.flags.get(name))

    def value(self, name: str, default: str | None = None) -> str | None:
        """The value of a value flag (the last one for a repeatable flag), or `default`."""
        v = self.flags.get(name)
        if isinstance(v, list):
            return v[-1] if v else default
        if isinstance(v, str):
            return v
        return default

    def values(self, name: str) -> list[str]:
        """Every value of a repeatable flag, in order."""
        v = self.flags.get(name)
        if isinstance(v, list):
            return v
        return [v] if isinstance(v, str) else []

    def given(self, name: str) -> bool:
        """Whether the flag appears on the command line at all."""
        return name in self.flags


def _unknown_flag(command: str, token: str, kinds: dict[str, str], short: dict[str, str]) -> SigError:
    name = token.partition("=")[0]
    names = [f"--{k}" for k in kinds] + list(short) + list(SHORT)
    if "format" in kinds:
        names.append("--json")
    from ..core.suggest import suggest

    close = suggest(name, names)
    hint = f"run `sig {command} --help`"
    return usage_error(f"unknown option {name} for `sig {command}`",
                       f"did you mean {close}? ({hint})" if close else hint)


def unknown_word(what: str, word: str, choices: list[str] | tuple[str, ...], usage: str,
                 spell: str = "`{}`") -> SigError:
    """A usage error for a mistyped subcommand (or name), with a "did you mean" when one is close."""
    from ..core.suggest import suggest

    close = suggest(word, choices)
    return usage_error(f'unknown {what} "{word}"', f"did you mean {spell.format(close)}?" if close else usage)


def parse(command: str, argv: list[str], spec: dict[str, str], short: dict[str, str] | None = None) -> Args:
    """Parse `argv` of `command` against its flags {name: kind} and short forms; usage errors name the flag."""
    kinds = {**GLOBAL_FLAGS, **spec}
    shorts = short or {}
    args = Args(command)
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            args.rest = argv[i:]
            break
        if token in SHORT:
            args.flags[SHORT[token]] = True
            continue
        if not token.startswith("--") and token[:2] in shorts:
            name = shorts[token[:2]]
            if kinds[name] == "bool":
                if len(token) > 2:
                    raise _unknown_flag(command, token, kinds, shorts)
                args.flags[name] = True
                continue
            if len(token) > 2:
                value = token[2:]  # -XPOST, -d@body.json
            else:
                if i >= len(argv) or argv[i] == "--":
                    raise usage_error(f"{token} (--{name}) needs a value", f"run `sig {command} --help`")
                value = argv[i]
                i += 1
            _store(args, name, kinds[name], value, token)
            continue
        if not token.startswith("--") or token == "--":
            if token.startswith("-") and len(token) > 1 and not _is_number(token):
                raise _unknown_flag(command, token, kinds, shorts)
            args.positionals.append(token)
            continue
        name, eq, inline = token[2:].partition("=")
        if name == "json" and "json" not in kinds and "format" in kinds:
            if eq:
                raise usage_error("--json takes no value", "write --json alone (it means --format json)")
            _store(args, "format", "value", "json", "--json")
            continue
        kind = kinds.get(name)
        if kind is None:
            raise _unknown_flag(command, token, kinds, shorts)
        if kind == "bool":
            if eq:
                if inline.lower() in ("1", "true", "yes"):
                    args.flags[name] = True
                elif inline.lower() in ("0", "false", "no"):
                    args.flags.pop(name, None)
                else:
                    raise usage_error(f"--{name} takes no value", f"write --{name} alone")
            else:
                args.flags[name] = True
            continue
        if eq:
            value = inline
        else:
            if i >= len(argv) or argv[i] == "--":
                raise usage_error(f"--{name} needs a value", f"run `sig {command} --help`")
            value = argv[i]
            i += 1
        _store(args, name, kind, value, f"--{name}")
    return args


def _store(args: Args, name: str, kind: str, value: str, given_as: str) -> None:
    if kind == "multi":
        existing = args.flags.setdefault(name, [])
        assert isinstance(existing, list)
        existing.append(value)
    else:
        if name in args.flags and args.flags[name] != value:
            first = _spelled(args.spelled.get(name, f"--{name}"), name, str(args.flags[name]))
            raise usage_error(f"--{name} given twice with different values: {first} and "
                              f"{_spelled(given_as, name, value)}", "give it once")
        args.flags[name] = value
        args.spelled[name] = given_as


def _spelled(token: str, name: str, value: str) -> str:
    """How a value was given, for a message: `--format table`, `--json (--format json)`, `-X (--method GET)`."""
    return f"--{name} {value}" if token == f"--{name}" else f"{token} (--{name} {value})"


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
