# as_root CMD...: runs CMD as root: directly when already root (CI), else through
# sudo; without either it stops the calling script, naming the command it needed.
# Sourced by test.sh and bench.sh, which both install packages and stop services.
# shellcheck shell=bash

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "${0##*/}: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}
