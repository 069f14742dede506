# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: `find_python` prints the path of a Python >= 3.12.
#
# Looks, in order, at $BGJOBS_PYTHON (if set), python3.14/3.13/3.12/python3 on PATH, then pyenv's
# installed versions (newest first). Each candidate is actually run: a pyenv shim for a version
# that is not active exists on PATH but fails. Prints the interpreter's real path
# (sys.executable) and returns 0, or explains what to install on stderr and returns 1.

_bgjobs_python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

_bgjobs_python_path() {
    "$1" -c 'import sys; print(sys.executable)' 2>/dev/null
}

find_python() {
    local candidate root path
    local -a candidates=()

    if [ -n "${BGJOBS_PYTHON:-}" ]; then
        if _bgjobs_python_ok "$BGJOBS_PYTHON"; then
            _bgjobs_python_path "$BGJOBS_PYTHON"
            return 0
        fi
        echo "BGJOBS_PYTHON=$BGJOBS_PYTHON is not a working Python 3.12 or newer." >&2
        return 1
    fi

    for candidate in python3.14 python3.13 python3.12 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            candidates+=("$candidate")
        fi
    done

    # pyenv installs that are not on PATH (no `pyenv global`/`local` selects them).
    local -a roots=()
    if [ -n "${PYENV_ROOT:-}" ]; then
        roots+=("$PYENV_ROOT")
    fi
    if command -v pyenv >/dev/null 2>&1; then
        root=$(pyenv root 2>/dev/null) && [ -n "$root" ] && roots+=("$root")
    fi
    roots+=("$HOME/.pyenv")
    for root in "${roots[@]}"; do
        [ -d "$root/versions" ] || continue
        # Newest first: 3.13.1 before 3.13.0 before 3.12.8.
        while IFS= read -r path; do
            [ -n "$path" ] && candidates+=("$path")
        done < <(
            for path in "$root"/versions/3.1[2-9]*/bin/python3; do
                [ -x "$path" ] && printf '%s\n' "$path"
            done | sort -V -r
        )
    done

    for candidate in "${candidates[@]}"; do
        if _bgjobs_python_ok "$candidate"; then
            path=$(_bgjobs_python_path "$candidate") && [ -n "$path" ] && {
                printf '%s\n' "$path"
                return 0
            }
        fi
    done

    cat >&2 <<'MSG'
No Python 3.12 or newer was found (looked for python3.14, python3.13, python3.12 and python3 on
PATH, and in pyenv's versions). Install one, for example:
    pyenv install 3.12            (then run this script again)
    sudo apt-get install python3.12 python3.12-venv     (Debian/Ubuntu, where packaged)
    brew install python@3.12      (macOS)
or point BGJOBS_PYTHON at an interpreter: BGJOBS_PYTHON=/path/to/python3.12 scripts/demo
MSG
    return 1
}

# `find_python_minor 3.12` prints the path of a Python 3.12 (any patch release), from PATH or
# pyenv's versions, or returns 1 (silently: the caller says what it skips).
find_python_minor() {
    local want=$1 candidate root path
    local -a candidates=()
    command -v "python$want" >/dev/null 2>&1 && candidates+=("python$want")
    for root in "${PYENV_ROOT:-}" "$(pyenv root 2>/dev/null)" "$HOME/.pyenv"; do
        [ -n "$root" ] && [ -d "$root/versions" ] || continue
        while IFS= read -r path; do
            [ -n "$path" ] && candidates+=("$path")
        done < <(
            for path in "$root/versions/$want".*/bin/python3; do
                [ -x "$path" ] && printf '%s\n' "$path"
            done | sort -V -r
        )
    done
    for candidate in "${candidates[@]}"; do
        if "$candidate" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$want')" \
                >/dev/null 2>&1; then
            _bgjobs_python_path "$candidate"
            return 0
        fi
    done
    return 1
}
