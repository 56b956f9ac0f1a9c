#!/usr/bin/env bash
# Build slipway's two images for real on a private Docker engine, then run them (make test-images).
#
# usage: scripts/test-images.sh [pytest args...]
#
#  1. starts Debian's dockerd with its own --data-root, exec-root and socket under
#     $SLIPWAY_DOCKER_ROOT (default /tmp/slipway-docker), --bridge=none --iptables=false, unless
#     that socket already answers (an engine someone else started is reused and left running);
#     an engine this script started is stopped at exit (SLIPWAY_KEEP_DOCKER=1 keeps it);
#  2. makes the base image slipway-base:bookworm once: debootstrap --variant=minbase with
#     python3, python3-pip, python3-venv, ca-certificates from the apt mirror this machine uses
#     (DEBIAN_MIRROR to override), plus this machine's extra CAs (a TLS-inspecting egress proxy
#     needs them for uv/pip in the builder), then `docker import`;
#  3. builds both images with scripts/images.sh (PYTHON_BASE=slipway-base:bookworm,
#     --network host, legacy builder);
#  4. runs tests/docker/test_images_build.py (marker docker) against that engine.
# Fails loudly, with the engine's log, when dockerd cannot start. CPU-heavy: several minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DROOT=${SLIPWAY_DOCKER_ROOT:-/tmp/slipway-docker}
SOCK="$DROOT/docker.sock"
BASE_IMAGE=slipway-base:bookworm
export DOCKER_HOST="unix://$SOCK"
export DOCKER_BUILDKIT=0   # the legacy builder: no buildx plugin needed, honours --network host

die() { echo "test-images.sh: $*" >&2; exit 1; }
step() { echo "== $(date +%T) $*"; }

[ "$(id -u)" -eq 0 ] || die "needs root (dockerd and debootstrap); run it as root or in CI's VM"
"$ROOT/scripts/ensure-debian-tools.sh" dockerd:docker.io debootstrap:debootstrap
mkdir -p "$DROOT"

stop_engine() {
  # stop the engine this run started (SLIPWAY_KEEP_DOCKER=1 leaves it up for the next run)
  [ "${SLIPWAY_KEEP_DOCKER:-0}" = 1 ] && return 0
  local pid
  pid=$(cat "$DROOT/dockerd.pid" 2>/dev/null) || return 0
  step "stopping dockerd ($pid)"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
}

if docker info >/dev/null 2>&1; then
  step "reusing the engine on $SOCK"
else
  trap stop_engine EXIT
  step "starting dockerd on $SOCK (log $DROOT/dockerd.log)"
  setsid dockerd --data-root "$DROOT/data" --exec-root "$DROOT/exec" --pidfile "$DROOT/dockerd.pid" \
    -H "$DOCKER_HOST" --bridge=none --iptables=false --ip6tables=false \
    >"$DROOT/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || {
    tail -n 30 "$DROOT/dockerd.log" >&2
    die "dockerd did not answer on $SOCK within 60 s (log above: $DROOT/dockerd.log)"
  }
fi
docker info --format 'engine {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}'

mirror() {
  # the first http(s) URI of apt's configured Debian sources (deb822 or one-line format)
  # (awk, not `head`: with pipefail, head's early exit would fail the pipeline)
  cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    2>/dev/null | awk '($1 == "URIs:" || $1 == "deb") && $2 !~ /security/ {
      print ($1 == "deb" && $2 ~ /^\[/) ? $3 : $2; exit }' || true
}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE already imported"
else
  url=${DEBIAN_MIRROR:-$(mirror)}
  [ -n "$url" ] || die "no Debian mirror found in /etc/apt/sources*; set DEBIAN_MIRROR"
  rootfs="$DROOT/rootfs"
  if [ ! -x "$rootfs/usr/bin/python3" ]; then
    step "debootstrap bookworm from $url"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
      bookworm "$rootfs" "$url" >"$DROOT/debootstrap.log" 2>&1 \
      || { tail -n 20 "$DROOT/debootstrap.log" >&2; die "debootstrap failed"; }
  fi
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  step "docker import $BASE_IMAGE"
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
fi

step "building both images on $BASE_IMAGE"
start=$(date +%s)
PYTHON_BASE=$BASE_IMAGE DOCKER_BUILD_FLAGS="--network host" "$ROOT/scripts/images.sh" build
step "built in $(( $(date +%s) - start )) s"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^slipway-' | sort

step "running the images (tests/docker)"
cd "$ROOT"
uv run --locked --no-sync pytest -m docker --durations=0 tests/docker/test_images_build.py "$@"
