#!/usr/bin/env bash
# Make the peers' virtualenv, .venv-peers at the repository root, with bench/peers/requirements.txt
# (django-tasks-db, django-q2, Procrastinate): `bash bench/peers/setup.sh`. The bench runs this
# itself when .venv-peers is missing or was made from other requirements.
#
# Python 3.12 or newer: python3.13 or python3.12 on PATH, else pyenv's 3.12/3.13 installs. Each
# candidate is run, because a pyenv shim on PATH fails for a version that is not selected.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv-peers"
requirements="$here/requirements.txt"

works() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
    local candidate root
    for candidate in python3.13 python3.12; do
        if command -v "$candidate" >/dev/null 2>&1 && works "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)"; then
        # Newest first: 3.13.1 before 3.13.0 before 3.12.8.
        while IFS= read -r candidate; do
            if works "$candidate"; then
                printf '%s\n' "$candidate"
                return 0
            fi
        done < <(printf '%s\n' "$root"/versions/3.1[23]*/bin/python3.1[23] | sort -V -r)
    fi
    return 1
}

if ! python="$(find_python)"; then
    cat >&2 <<'MSG'
bench/peers/setup.sh: no Python 3.12 or 3.13 found (looked for python3.13 and python3.12 on
PATH, then $(pyenv root)/versions/3.1[23]*/bin/python3.1[23]). Install one, e.g.
`pyenv install 3.13` or `apt-get install python3.12-venv`, and run the bench again.
MSG
    exit 1
fi

echo "bench/peers/setup.sh: making $venv with $python" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
# The bench compares this copy with requirements.txt to know whether to run this script again.
cp "$requirements" "$venv/requirements.installed"
