"""`sig completion bash|zsh|fish`: static scripts; provider ids read from config.yaml with awk, no sig call."""

from __future__ import annotations

from ...core.errors import usage_error
from ..app import App
from ..args import Args

FLAGS: dict[str, str] = {}
COMMANDS = ("login logout proxy request run get status providers rename remove remote sync watch init "
            "doctor completion")

# Provider ids: the keys indented two spaces under `providers:` in the config file.
_IDS = (r"""awk '/^providers:/{p=1;next} /^[^ #]/{p=0} p && /^  [A-Za-z0-9][A-Za-z0-9._-]*:/{sub(/^  /,"");"""
        r"""sub(/:.*/,"");print}' "${SIG_HOME:-$HOME/.sig}/config.yaml" 2>/dev/null""")

BASH = f"""\
# bash completion for sig
_sig_completions() {{
  local cur prev cmd
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  cmd="${{COMP_WORDS[1]}}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "{COMMANDS}" -- "$cur") ); return
  fi
  case "$prev" in
    --format) COMPREPLY=( $(compgen -W "json yaml env table plain header value body headers" -- "$cur") ); return;;
    --strategy) COMPREPLY=( $(compgen -W "browser cookie api-token basic prompt oauth2" -- "$cur") ); return;;
    --mode) COMPREPLY=( $(compgen -W "auto headless cdp visible" -- "$cur") ); return;;
  esac
  case "$cmd" in
    completion) COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") ); return;;
    proxy) COMPREPLY=( $(compgen -W "start stop status trust env" -- "$cur") ); return;;
    remote) COMPREPLY=( $(compgen -W "add remove list" -- "$cur") ); return;;
    sync) COMPREPLY=( $(compgen -W "push pull" -- "$cur") ); return;;
    watch) [ "$COMP_CWORD" -eq 2 ] && {{ COMPREPLY=( $(compgen -W "add remove list set-interval start" -- "$cur") ); return; }};;
  esac
  if [[ "$cur" == --* ]]; then
    COMPREPLY=( $(compgen -W "--help --verbose --format --as --strategy --token-stdin --token-env --cookie-stdin \\
--username --password-stdin --force --no-redaction --keep-config --provider --mode --remote --yes" -- "$cur") )
    return
  fi
  COMPREPLY=( $(compgen -W "$({_IDS})" -- "$cur") )
}}
complete -F _sig_completions sig
"""

ZSH = """\
#compdef sig
# zsh completion for sig
_sig() {{
  local -a commands providers
  commands=({described})
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  providers=(${{(f)"$({ids})"}})
  case "$words[2]" in
    completion) _values 'shell' bash zsh fish ;;
    proxy) _values 'action' start stop status trust env ;;
    remote) _values 'action' add remove list ;;
    sync) _values 'action' push pull ;;
    *) _describe 'provider' providers ;;
  esac
}}
compdef _sig sig
""".format(described=" ".join(f"'{c}'" for c in COMMANDS.split()), ids=_IDS)

FISH = f"""\
# fish completion for sig
function __sig_providers
    {_IDS}
end
complete -c sig -f
complete -c sig -n '__fish_use_subcommand' -a '{COMMANDS}'
complete -c sig -n '__fish_seen_subcommand_from get status login logout rename remove run request' -a '(__sig_providers)'
complete -c sig -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'
complete -c sig -n '__fish_seen_subcommand_from proxy' -a 'start stop status trust env'
complete -c sig -n '__fish_seen_subcommand_from remote' -a 'add remove list'
complete -c sig -n '__fish_seen_subcommand_from sync' -a 'push pull'
complete -c sig -l help -l verbose -l format -l force
"""


def run(args: Args, app: App) -> int:
    scripts = {"bash": BASH, "zsh": ZSH, "fish": FISH}
    if len(args.positionals) != 1 or args.positionals[0] not in scripts:
        shell = args.positionals[0] if args.positionals else ""
        raise usage_error(f'unknown shell "{shell}"' if shell else "name a shell",
                          "usage: sig completion bash|zsh|fish")
    app.out(scripts[args.positionals[0]])
    return 0
