#!/usr/bin/env bash
# The whole suite: installs what is missing, builds, runs unit tests (sibling *.test.ts under
# src/) and system tests (test/system, a real baleiad per file) with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Tools the interop tests use (no one here wrote them).
missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/docker-compose ] || missing+=(docker-compose)
[ -x /usr/bin/oci-image-tool ] || missing+=(oci-image-tool)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || \
    { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
# Unit and seam tests first, then the system tests; both as root against the real kernel.
mapfile -t unit < <(find dist/src -name '*.test.js' | sort)
mapfile -t system < <(find dist/test -name '*.test.js' | sort)
exec node --test --test-concurrency=2 --test-timeout=300000 "${unit[@]}" "${system[@]}"
