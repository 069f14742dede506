# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: `ensure_venv GROUP` makes .venv with a Python >= 3.12
# (scripts/_python.sh finds one) and installs the project with the [dependency-groups] GROUP,
# again only when pyproject.toml changed. Sets VPY to the venv's python.

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=scripts/_python.sh
source "$REPO/scripts/_python.sh"

VENV="$REPO/.venv"
VPY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_venv() {
    local group=$1 stamp="$VENV/.bgjobs-installed-$1" want python
    if [ -e "$VENV" ] && ! _bgjobs_python_ok "$VPY"; then
        say "$VENV does not run Python >= 3.12; making it again"
        rm -rf -- "$VENV"
    fi
    if [ ! -e "$VENV" ]; then
        python=$(find_python) || return 1
        say "Creating $VENV with $python ($("$python" -c 'import platform; print(platform.python_version())'))"
        if ! "$python" -m venv "$VENV"; then
            rm -rf -- "$VENV"
            echo "Could not create a virtualenv with $python. On Debian/Ubuntu install the venv" \
                 "module (e.g. apt-get install python3.12-venv), then run this again." >&2
            return 1
        fi
    fi
    want=$(cksum < "$REPO/pyproject.toml")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    say "Installing django-bgjobs and its '$group' dependencies into .venv (first run: a minute or two)"
    "$VPY" -m pip install --quiet --upgrade pip
    if "$VPY" -m pip install --help 2>/dev/null | grep -q -- '--group'; then
        "$VPY" -m pip install --quiet -e "$REPO" --group "$REPO/pyproject.toml:$group"
    else
        # pip older than 25.1: install the group's packages by name.
        local -a packages
        mapfile -t packages < <("$VPY" - "$REPO/pyproject.toml" "$group" <<'PY'
import sys
import tomllib

groups = tomllib.load(open(sys.argv[1], "rb")).get("dependency-groups", {})


def expand(name, seen=()):
    for item in groups.get(name, []):
        if isinstance(item, dict):
            if item.get("include-group") not in seen:
                yield from expand(item["include-group"], (*seen, name))
        else:
            yield item


print("\n".join(expand(sys.argv[2])))
PY
        )
        "$VPY" -m pip install --quiet -e "$REPO" "${packages[@]}"
    fi
    printf '%s\n' "$want" > "$stamp"
}
