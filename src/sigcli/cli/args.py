"""Argument parsing: flags anywhere before `--`, `--flag=value` and `--flag value`, `--` ends options.

Declarative and tiny on purpose (argparse costs start-up time and cannot express `run P -- cmd` well).
A command declares its flags as {name: kind}; kind is "bool", "value" or "multi" (repeatable value).
"""

from __future__ import annotations

from ..core.errors import usage_error

GLOBAL_FLAGS = {"help": "bool", "verbose": "bool", "version": "bool"}
SHORT = {"-h": "help"}


class Args:
    def __init__(self, command: str) -> None:
        self.command = command
        self.positionals: list[str] = []
        self.rest: list[str] | None = None  # everything after `--`, when given
        self.flags: dict[str, str | bool | list[str]] = {}

    def flag(self, name: str) -> bool:
        return bool(self.flags.get(name))

    def value(self, name: str, default: str | None = None) -> str | None:
        v = self.flags.get(name)
        if isinstance(v, list):
            return v[-1] if v else default
        if isinstance(v, str):
            return v
        return default

    def values(self, name: str) -> list[str]:
        v = self.flags.get(name)
        if isinstance(v, list):
            return v
        return [v] if isinstance(v, str) else []

    def given(self, name: str) -> bool:
        return name in self.flags


def parse(command: str, argv: list[str], spec: dict[str, str]) -> Args:
    kinds = {**GLOBAL_FLAGS, **spec}
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
        if not token.startswith("--") or token == "--":
            if token.startswith("-") and len(token) > 1 and not _is_number(token):
                raise usage_error(f"unknown option {token}", f"run `sig {command} --help`")
            args.positionals.append(token)
            continue
        name, eq, inline = token[2:].partition("=")
        kind = kinds.get(name)
        if kind is None:
            raise usage_error(f"unknown option --{name} for `sig {command}`", f"run `sig {command} --help`")
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
        if kind == "multi":
            existing = args.flags.setdefault(name, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            if name in args.flags and args.flags[name] != value:
                raise usage_error(f"--{name} given twice with different values", "give it once")
            args.flags[name] = value
    return args


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
