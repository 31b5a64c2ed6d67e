#!/usr/bin/env bash
# Installs the reference engine for bench/engine.ts: Debian's docker.io (dockerd 20.10 + containerd).
# Idempotent. Run as root. Does NOT enable or start any service: the bench starts its own dockerd
# on a private data root and socket. Package installation is the only network use.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if have dockerd && have containerd; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "bench: dockerd missing; run as root: apt-get install -y docker.io" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the package's service from starting (no systemd here usually, but be sure).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
echo "bench: installing docker.io (reference engine)" >&2
apt-get update -qq >/dev/null || true
apt-get install -y -qq --no-install-recommends docker.io >/dev/null
# docker.io ships its own /usr/bin/docker CLI; the bench uses /usr/local/bin/docker explicitly.
have dockerd && have containerd
