"""`sig completion bash|zsh|fish`: completion scripts made from the flag tables the parser itself uses.

Each command's flags come from its module's FLAGS (plus the global ones), so `sig run --<TAB>` offers
exactly what `sig run` accepts. The scripts never call sig at completion time: provider ids are read from
config.yaml with awk, so a TAB costs no Python start-up.
"""

from __future__ import annotations

import importlib

from ...auth.login import GRANTS
from ...browser.locate import CHANNELS
from ...config.keys import TOP_SETTABLE
from ...core.errors import usage_error
from ...core.strategies import NAMES as STRATEGY_NAMES
from ...inject.mount import FORMATS as MOUNT_FORMATS
from ..app import App
from ..args import GLOBAL_FLAGS, Args
from .login import MODES as LOGIN_MODES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FLAGS: dict[str, str] = {}

SUBCOMMANDS = {
    "proxy": ("start", "stop", "status", "trust", "env"),
    "remote": ("add", "remove", "list"),
    "sync": ("push", "pull"),
    "watch": ("add", "remove", "list", "set-interval", "start"),
    "completion": ("bash", "zsh", "fish"),
    "config": ("path", "get", "set", "unset"),
}
# Commands whose positional arguments are provider ids.
TAKES_PROVIDERS = ("get", "status", "login", "logout", "rename", "remove", "run")
OUTPUT_FORMATS = ("json", "yaml", "env", "table", "plain")
FORMATS = {
    "get": ("json", "header", "value"), "request": ("json", "body", "headers"), "status": OUTPUT_FORMATS,
    "providers": OUTPUT_FORMATS, "remote": ("json", "table"), "watch": ("json", "table"),
}
# Values of flags that take one of a fixed set (any command).
CHOICES = {
    "strategy": STRATEGY_NAMES,
    "mode": LOGIN_MODES,
    "mount-format": MOUNT_FORMATS,
    "channel": tuple(CHANNELS),
    "grant": GRANTS,
    "method": ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"),
}
FILE_FLAGS = ("mount", "cacert", "ssh-key", "body", "browser-data-dir", "credentials-dir", "output")
PROVIDER_FLAGS = ("provider",)
# `sig config get|set|unset <TAB>`: the settings outside providers (providers.<id>. comes from the config).
SETTINGS = TOP_SETTABLE

# Provider ids: the keys indented two spaces under `providers:` in the config file.
_AWK = (r"""awk '/^providers:/{p=1;next} /^[^ #]/{p=0} p && /^  [A-Za-z0-9][A-Za-z0-9._-]*:/{sub(/^  /,"");"""
        r"""sub(/:.*/,"");print}'""")
_IDS = _AWK + ' "${SIG_HOME:-$HOME/.sig}/config.yaml" 2>/dev/null'  # POSIX-style shells (bash, zsh)


def commands() -> tuple[str, ...]:
    """The command names, for completion."""
    from ..main import COMMANDS

    return COMMANDS


def aliases() -> dict[str, str]:
    """The command aliases, for completion."""
    from ..main import ALIASES

    return ALIASES


def _tables() -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """{command: (its FLAGS table, its short forms {"-X": flag name})}, from the command modules."""
    out = {}
    for command in commands():
        module = importlib.import_module(f"{__package__}.{command}")
        out[command] = (dict(module.FLAGS), dict(getattr(module, "SHORT", None) or {}))
    return out


def command_flags() -> dict[str, list[str]]:
    """{command: its flags as typed}: the command's FLAGS table, `--json` where it has --format, the global
    options, then its short forms (`-X`)."""
    out = {}
    for command, (flags, short) in _tables().items():
        names = [*flags, *(g for g in GLOBAL_FLAGS if g not in flags)]
        if "format" in flags and "json" not in flags:
            names.insert(list(flags).index("format") + 1, "json")
        out[command] = [f"--{name}" for name in names] + list(short)
    return out


def _flag_kinds() -> dict[str, dict[str, str]]:
    """{command: {flag name: kind}}, the global options included."""
    return {command: {**flags, **{g: k for g, k in GLOBAL_FLAGS.items() if g not in flags}}
            for command, (flags, _short) in _tables().items()}


def _short_flags() -> dict[str, dict[str, str]]:
    """{command: {"-X": flag name}} for the commands that have short forms."""
    return {command: short for command, (_flags, short) in _tables().items() if short}


def _typed(kinds: dict[str, dict[str, str]]) -> list[tuple[str, str, str, str]]:
    """(command, flag as typed, flag name, kind) for every long and short flag."""
    shorts = _short_flags()
    rows = [(c, f"--{f}", f, k) for c, table in kinds.items() for f, k in table.items()]
    rows += [(c, s, f, kinds[c][f]) for c, table in shorts.items() for s, f in table.items()]
    return rows


def _values(command: str, flag: str) -> tuple[str, ...]:
    if flag == "format":
        return FORMATS.get(command, ("json",))
    return CHOICES.get(flag, ())


def _words(items: list[str] | tuple[str, ...]) -> str:
    return " ".join(items)


def _shell_cases(say: Callable[[str], str]) -> tuple[str, str, str]:
    """What bash and zsh share, with `say(words)` as the shell's way to print a list of words: (the case
    arms aliases → commands, the functions __sig_flags (a command's flags), __sig_values (a flag's values)
    and __sig_providers, the "cmd:flag" pairs taking a value)."""
    kinds = _flag_kinds()
    alias_case = " ".join(f"{a}) cmd={c};;" for a, c in aliases().items())
    flag_case = "\n".join(f"    {c}) {say(_words(f))};;" for c, f in command_flags().items())
    value_lines = []
    for command, typed, flag, kind in _typed(kinds):
        values = _values(command, flag)
        if kind != "bool" and values:
            value_lines.append(f"    {command}:{typed}) {say(_words(values))};;")
    value_case = "\n".join(value_lines)
    functions = f"""\
__sig_flags() {{
  case "$1" in
{flag_case}
  esac
}}
__sig_values() {{
  case "$1:$2" in
{value_case}
  esac
}}
__sig_providers() {{
  {_IDS}
}}"""
    return alias_case, functions, _takes_value(kinds)


def _file_flags() -> list[str]:
    """The flags whose value is a file, long and short (`-o`, `-d`), for the shells' case patterns."""
    typed = ["--" + f for f in FILE_FLAGS]
    for table in _short_flags().values():
        typed += [s for s, f in table.items() if f in FILE_FLAGS and s not in typed]
    return typed


# -- bash ------------------------------------------------------------------------------------------------


def bash_script() -> str:
    """The bash completion script."""
    alias_case, functions, takes_value = _shell_cases(lambda words: f'echo "{words}"')
    sub_case = "\n".join(f"    {c}) [ \"$COMP_CWORD\" -eq 2 ] && {{ COMPREPLY=( $(compgen -W \"{_words(s)}\" -- \"$cur\") );"
                         f" return; }};;" for c, s in SUBCOMMANDS.items())
    return f"""\
# bash completion for sig (generated from sig's own flag tables: sig completion bash)
{functions}
_sig_completions() {{
  local cur prev cmd i
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  cmd="${{COMP_WORDS[1]}}"
  COMPREPLY=()
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "{_words(commands())} {_words(list(aliases()))}" -- "$cur") ); return
  fi
  case "$cmd" in {alias_case} esac
  for ((i = 2; i < COMP_CWORD; i++)); do
    [ "${{COMP_WORDS[i]}}" = "--" ] && return  # the command sig runs: default (file) completion
  done
  case "$prev" in
    --provider) COMPREPLY=( $(compgen -W "$(__sig_providers)" -- "$cur") ); return;;
    {"|".join(_file_flags())}) return;;
  esac
  if [[ " {takes_value} " == *" $cmd:$prev "* ]]; then
    COMPREPLY=( $(compgen -W "$(__sig_values "$cmd" "$prev")" -- "$cur") ); return
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$(__sig_flags "$cmd")" -- "$cur") ); return
  fi
  case "$cmd" in
{sub_case}
  esac
  case "$cmd" in
    {"|".join(TAKES_PROVIDERS)}) COMPREPLY=( $(compgen -W "$(__sig_providers)" -- "$cur") );;
    watch) [ "$COMP_CWORD" -eq 3 ] && COMPREPLY=( $(compgen -W "$(__sig_providers)" -- "$cur") );;
    config) [ "$COMP_CWORD" -eq 3 ] && [ "${{COMP_WORDS[2]}}" != path ] &&
      COMPREPLY=( $(compgen -W "{_words(SETTINGS)} $(__sig_providers | sed 's/.*/providers.&./')" -- "$cur") );;
  esac
}}
complete -o default -F _sig_completions sig
"""


def _takes_value(kinds: dict[str, dict[str, str]]) -> str:
    """"cmd:--flag" (or "cmd:-X") for every flag that takes a value: after one of these, complete its value."""
    return " ".join(f"{c}:{typed}" for c, typed, _f, k in _typed(kinds) if k != "bool")


# -- zsh -------------------------------------------------------------------------------------------------


def zsh_script() -> str:
    """The zsh completion script."""
    alias_case, functions, takes_value = _shell_cases(lambda words: f"print -r -- {words}")
    sub_case = "\n".join(f"    {c}) (( CURRENT == 3 )) && {{ compadd -- {_words(s)}; return; }};;"
                         for c, s in SUBCOMMANDS.items())
    return f"""\
#compdef sig
# zsh completion for sig (generated from sig's own flag tables: sig completion zsh)
# Load it after compinit, e.g. in ~/.zshrc:  source <(sig completion zsh)
{functions}
_sig() {{
  local cmd=${{words[2]}} cur=${{words[CURRENT]}} prev=${{words[CURRENT-1]}} i
  if (( CURRENT == 2 )); then
    compadd -- {_words(commands())} {_words(list(aliases()))}
    return
  fi
  case "$cmd" in {alias_case} esac
  for (( i = 3; i < CURRENT; i++ )); do
    [[ ${{words[i]}} == -- ]] && {{ _files; return; }}
  done
  case "$prev" in
    --provider) compadd -- ${{(f)"$(__sig_providers)"}}; return;;
    {"|".join(_file_flags())}) _files; return;;
  esac
  if [[ $prev == -* && " {takes_value} " == *" $cmd:$prev "* ]]; then
    local values="$(__sig_values $cmd $prev)"
    [[ -n $values ]] && compadd -- ${{=values}}
    return
  fi
  if [[ $cur == -* ]]; then
    compadd -- $(__sig_flags $cmd)
    return
  fi
  case "$cmd" in
{sub_case}
  esac
  case "$cmd" in
    {"|".join(TAKES_PROVIDERS)}) compadd -- ${{(f)"$(__sig_providers)"}};;
    watch) (( CURRENT == 4 )) && compadd -- ${{(f)"$(__sig_providers)"}};;
    config) (( CURRENT == 4 )) && [[ ${{words[3]}} != path ]] &&
      compadd -- {_words(SETTINGS)} ${{(f)"$(__sig_providers | sed 's/.*/providers.&./')"}};;
  esac
}}
(( $+functions[compdef] )) && compdef _sig sig
"""


# -- fish ------------------------------------------------------------------------------------------------


def fish_script() -> str:
    """The fish completion script."""
    kinds = _flag_kinds()
    alias_of: dict[str, list[str]] = {}
    for alias, command in aliases().items():
        alias_of.setdefault(command, []).append(alias)
    lines = [
        "# fish completion for sig (generated from sig's own flag tables: sig completion fish)",
        "function __sig_providers",
        "    set -l home $HOME/.sig",
        "    set -q SIG_HOME; and set home $SIG_HOME",
        f"    {_AWK} \"$home/config.yaml\" 2>/dev/null",
        "end",
        "complete -c sig -f",
        f"complete -c sig -n '__fish_use_subcommand' -a '{_words(commands())} {_words(list(aliases()))}'",
    ]
    for command, table in kinds.items():
        seen = f"__fish_seen_subcommand_from {_words([command, *alias_of.get(command, [])])}"
        if command in SUBCOMMANDS:
            lines.append(f"complete -c sig -n '{seen}' -a '{_words(SUBCOMMANDS[command])}'")
        if command == "config":
            lines.append(f"complete -c sig -n '{seen}; and __fish_seen_subcommand_from get set unset' "
                         f"-a '{_words(SETTINGS)} (__sig_providers | sed \"s/.*/providers.&./\")'")
        if command in TAKES_PROVIDERS:
            lines.append(f"complete -c sig -n '{seen}' -a '(__sig_providers)'")
        short = {f: s for s, f in _short_flags().get(command, {}).items()}
        if "format" in table and "json" not in table:
            lines.append(f"complete -c sig -n '{seen}' -l json")
        for flag, kind in table.items():
            spec = f"complete -c sig -n '{seen}' -l {flag}"
            if flag in short:
                spec += f" -s {short[flag][1:]}"
            values = _values(command, flag)
            if kind == "bool":
                pass
            elif flag in PROVIDER_FLAGS:
                spec += " -x -a '(__sig_providers)'"
            elif flag in FILE_FLAGS:
                spec += " -r -F"
            elif values:
                spec += f" -x -a '{_words(values)}'"
            else:
                spec += " -x"
            lines.append(spec)
    return "\n".join(lines) + "\n"


SCRIPTS = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}


class CompletionOptions:
    """`sig completion`'s shell, checked."""

    def __init__(self, args: Args) -> None:
        if len(args.positionals) != 1 or args.positionals[0] not in SCRIPTS:
            shell = args.positionals[0] if args.positionals else ""
            if shell:
                from ..args import unknown_word

                raise unknown_word("shell", shell, list(SCRIPTS), "usage: sig completion bash|zsh|fish",
                                   "`sig completion {}`")
            raise usage_error("name a shell", "usage: sig completion bash|zsh|fish")
        self.shell = args.positionals[0]


def run(args: Args, app: App) -> int:
    """Print the completion script for the shell named."""
    app.out(SCRIPTS[CompletionOptions(args).shell]())
    return 0
