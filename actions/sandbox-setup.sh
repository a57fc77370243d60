#!/usr/bin/env bash
# Make bubblewrap usable for `run_command` and verify: install it when it is missing, and on
# Ubuntu 24.04 (GitHub's ubuntu-latest) load an AppArmor profile that lets /usr/bin/bwrap alone
# create user namespaces (docs/sandbox.md explains both). Used by `make sandbox` (and so by
# `make test` and `make demo`) and by the Action's `steps.sh sandbox-setup`.
#
# Never fails: without bubblewrap `run_command` is not offered and verify is skipped, each
# saying why (`orchestrator sandbox` prints the reason).
set -uo pipefail

warn() {
  if [ -n "${GITHUB_ACTIONS:-}" ]; then echo "::warning title=orchestrator sandbox::$1"
  else echo "sandbox: $1" >&2; fi
}

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi

if ! command -v bwrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 \
    && { $sudo apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null 2>&1 \
        && $sudo apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; then
    echo "sandbox: installed bubblewrap ($(bwrap --version))"
  else
    warn "could not install bubblewrap; install the package 'bubblewrap' (Debian/Ubuntu/Fedora/Arch) as root"
  fi
fi

knob=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
if [ -r "$knob" ] && [ "$(cat "$knob")" = "1" ] && [ ! -e /etc/apparmor.d/bwrap ]; then
  if printf '%s\n' 'abi <abi/4.0>,' 'include <tunables/global>' \
      'profile bwrap /usr/bin/bwrap flags=(unconfined) {' '  userns,' \
      '  include if exists <local/bwrap>' '}' | $sudo tee /etc/apparmor.d/bwrap >/dev/null \
    && $sudo apparmor_parser -r /etc/apparmor.d/bwrap; then
    echo "sandbox: loaded the AppArmor profile /etc/apparmor.d/bwrap"
  else
    warn "could not load the bwrap AppArmor profile (see docs/sandbox.md)"
  fi
fi
exit 0
