#!/usr/bin/env bash
# Installs what baleia needs on a Debian/Ubuntu machine, then builds it. Idempotent and quiet
# when nothing is missing. Run as root (the launcher and `npm test` call it).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have runc || need_pkgs+=(runc)
have conmon || [ -x /usr/libexec/podman/conmon ] || [ -x /usr/bin/conmon ] || need_pkgs+=(conmon)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
have iptables || need_pkgs+=(iptables)
[ -x /usr/bin/tini-static ] || need_pkgs+=(tini)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
have ip || need_pkgs+=(iproute2)
[ -x /usr/bin/python3 ] || need_pkgs+=(python3)   # a pyenv shim on PATH is not Debian's python3 (tests bind-mount /usr)
have zstd || need_pkgs+=(zstd)
# igzip (isa-l) inflates pulled layers about twice as fast as zlib; without it pulls use zlib.
have igzip || need_pkgs+=(isal)
have ps || need_pkgs+=(procps)
have conntrack || need_pkgs+=(conntrack)   # forgets UDP flows of unpublished ports

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "baleia: missing packages ${need_pkgs[*]}: run as root (or: sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
  echo "baleia: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "baleia: installing npm dependencies" >&2
  # npm ci refuses a lock without entries for optional platform packages that the registry does
  # not have (node-unix-socket's darwin/arm builds): then install from the lock with npm install.
  npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || \
    npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

# Rebuild when any source is newer than the last build.
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src test bench tsconfig.json package.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  echo "baleia: building" >&2
  npx tsc -p tsconfig.json
  touch "$stamp"
fi
