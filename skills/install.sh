#!/bin/sh
# Install sig's agent skills into an AI agent's skills folder.
# Every folder next to this script that holds a SKILL.md is a skill. Copies leave out tests/ folders
# and caches. Re-running replaces what an earlier run installed.
set -eu

usage() {
    cat <<'EOF'
Usage: install.sh [--agent claude|cursor|windsurf|cline | --dest DIR] [--skill NAME]... [--list]

Install sig's agent skills (folders holding a SKILL.md) into an agent's skills folder.

  --agent NAME   claude    ~/.claude/skills/<skill>
                 cursor    ~/.cursor/skills/<skill>
                 windsurf  ~/.codeium/windsurf/skills/<skill>
                 cline     ~/.cline/skills/<skill>
  --dest DIR     install into DIR/<skill> instead
  --skill NAME   install only this skill (repeatable; default: all); sigcli-auth, the guide
                 and config template the others refer to, always comes along
  --list         print the available skills with their descriptions, install nothing
  -h, --help     this help

Without --agent or --dest, the first agent whose folder exists (~/.claude, ~/.cursor,
~/.codeium/windsurf, ~/.cline) is used, else claude. tests/ folders and caches are not copied;
an installed skill is replaced as a whole. Exit 2 on a usage error.
EOF
}

die_usage() {
    printf 'install.sh: %s\n' "$1" >&2
    printf "Run 'install.sh --help' for usage.\n" >&2
    exit 2
}

SRC=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)

agent_dir() {
    case "$1" in
        claude) printf '%s\n' "$HOME/.claude/skills" ;;
        cursor) printf '%s\n' "$HOME/.cursor/skills" ;;
        windsurf) printf '%s\n' "$HOME/.codeium/windsurf/skills" ;;
        cline) printf '%s\n' "$HOME/.cline/skills" ;;
        *) return 1 ;;
    esac
}

# The skills: sub-folders of SRC that hold a SKILL.md, sorted by name.
available() {
    for dir in "$SRC"/*/; do
        [ -f "$dir/SKILL.md" ] || continue
        name=$(basename -- "$dir")
        printf '%s\n' "$name"
    done
}

# The one-line `description:` of a SKILL.md front matter, unquoted.
description() {
    awk '
        NR == 1 { if ($0 != "---") exit; next }
        $0 == "---" { exit }
        /^description:[ \t]*/ {
            sub(/^description:[ \t]*/, "")
            if ($0 ~ /^'\''.*'\''$/) { $0 = substr($0, 2, length($0) - 2); gsub(/'\'''\''/, "'\''") }
            else if ($0 ~ /^".*"$/) { $0 = substr($0, 2, length($0) - 2) }
            print
            exit
        }
    ' "$1"
}

AGENT=""
DEST=""
SKILLS=""
LIST=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --list) LIST=1 ;;
        --agent | --dest | --skill)
            [ $# -ge 2 ] && [ -n "$2" ] || die_usage "$1 needs a value"
            case "$1" in
                --agent) AGENT=$2 ;;
                --dest) DEST=$2 ;;
                --skill) SKILLS="$SKILLS $2" ;;
            esac
            shift ;;
        --agent=*) AGENT=${1#--agent=} ;;
        --dest=*) DEST=${1#--dest=} ;;
        --skill=*) SKILLS="$SKILLS ${1#--skill=}" ;;
        *) die_usage "unknown option: $1" ;;
    esac
    shift
done

if [ "$LIST" -eq 1 ]; then
    echo "Available skills (in $SRC):"
    for name in $(available); do
        printf '  %-16s %s\n' "$name" "$(description "$SRC/$name/SKILL.md")"
    done
    exit 0
fi

if [ -n "$AGENT" ]; then
    agent_dir "$AGENT" >/dev/null || die_usage "unknown agent: $AGENT (use claude, cursor, windsurf or cline)"
fi
if [ -z "$DEST" ]; then
    if [ -z "$AGENT" ]; then
        : "${HOME:?HOME is not set; use --dest DIR}"
        for candidate in claude cursor windsurf cline; do
            parent=$(dirname -- "$(agent_dir "$candidate")")
            if [ -d "$parent" ]; then
                AGENT=$candidate
                echo "Auto-detected: $AGENT"
                break
            fi
        done
        AGENT=${AGENT:-claude}
    fi
    DEST=$(agent_dir "$AGENT")
fi

if [ -z "$SKILLS" ]; then
    SKILLS=$(available)
    [ -n "$SKILLS" ] || { echo "install.sh: no skills found in $SRC" >&2; exit 1; }
else
    for name in $SKILLS; do
        case "$name" in
            */* | .* | '') die_usage "not a skill name: $name" ;;
        esac
        [ -f "$SRC/$name/SKILL.md" ] || die_usage "no skill named $name (see install.sh --list)"
    done
    # The other skills point to sigcli-auth (its guide and references/config-template.yaml): bundle it.
    case " $SKILLS " in
        *" sigcli-auth "*) ;;
        *) [ ! -f "$SRC/sigcli-auth/SKILL.md" ] || SKILLS="$SKILLS sigcli-auth" ;;
    esac
fi

created=0
[ -d "$DEST" ] || created=1
mkdir -p -- "$DEST"
DEST=$(CDPATH='' cd -- "$DEST" && pwd -P)
case "$DEST/" in
    "$SRC"/*)
        [ "$created" -eq 0 ] || rmdir -- "$DEST" 2>/dev/null || :
        die_usage "the destination $DEST is inside the skills source folder" ;;
esac
echo "Installing into $DEST"
for name in $SKILLS; do
    stage="$DEST/.$name.installing.$$"
    rm -rf -- "$stage"
    trap 'rm -rf -- "$stage"' EXIT
    cp -R -L -- "$SRC/$name" "$stage"  # -L: the modules skills share (../_shared) arrive as files
    # Leave out tests and caches (at any depth).
    find "$stage" -depth \( -type d \( -name tests -o -name __pycache__ -o -name .pytest_cache \
        -o -name .ruff_cache -o -name .mypy_cache -o -name node_modules \) \) -exec rm -rf -- {} +
    find "$stage" \( -name '*.pyc' -o -name '*.pyo' -o -name .DS_Store \) -type f -exec rm -f -- {} +
    rm -rf -- "${DEST:?}/$name"
    mv -- "$stage" "$DEST/$name"
    trap - EXIT
    echo "  + $name"
done
echo "Done."
