#!/usr/bin/env bash
# Build and push slipway's two images, each tagged with the package version and the git commit.
#
# usage: scripts/images.sh [--dry-run] [--no-login] tags|build|push [components|server ...]
#
#   tags      print the image references, one a line (no Docker needed)
#   build     docker build images/<name>.Dockerfile with both tags
#   push      push both tags; logs in first with `aws ecr get-login-password` when the registry
#             is an ECR host (skip that with --no-login, e.g. after aws-actions/amazon-ecr-login)
#   --dry-run print the commands instead of running them (no Docker needed)
#
# References are <registry><name>:<tag>, read the way slipway.config.Settings reads them:
#   SLIPWAY_IMAGE_REGISTRY  prefix ending in "/", e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/
#                           (default: empty, local image names)
#   SLIPWAY_IMAGE_TAG       version tag (default: [project].version in pyproject.toml)
#   SLIPWAY_GIT_COMMIT      commit tag (default: `git rev-parse HEAD`, "-dirty" appended when
#                           tracked files changed, as Settings.git_commit does)
# Other inputs: PYTHON_BASE (base image build arg), SOURCE_URL (OCI source label),
# DOCKER_BUILD_FLAGS (extra `docker build` flags, e.g. "--network host"), DOCKER (client).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER=${DOCKER:-docker}
ALL_IMAGES=(components server)

die() { echo "images.sh: $*" >&2; exit 1; }
usage() { sed -n '4,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

dry_run=0 login=1 verb=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --no-login) login=0 ;;
    -h|--help) usage ;;
    tags|build|push) [ -z "$verb" ] || usage; verb=$1 ;;
    components|server) names+=("$1") ;;
    *) echo "images.sh: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
[ -n "$verb" ] || usage
[ ${#names[@]} -gt 0 ] || names=("${ALL_IMAGES[@]}")

project_version() {
  # the `version = "..."` line of the [project] table
  awk '/^\[/{in_project = ($0 == "[project]")} in_project && /^version *=/{
         gsub(/^version *= *"|".*$/, ""); print; exit }' "$ROOT/pyproject.toml"
}

git_commit() {
  local commit
  commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "${commit}-dirty"
  else
    echo "$commit"
  fi
}

REGISTRY=${SLIPWAY_IMAGE_REGISTRY:-}
VERSION=$(project_version)
[ -n "$VERSION" ] || die "no [project] version found in $ROOT/pyproject.toml"
TAG=${SLIPWAY_IMAGE_TAG:-$VERSION}
COMMIT=${SLIPWAY_GIT_COMMIT:-$(git_commit)}
SOURCE_URL=${SOURCE_URL:-}

if [ -n "$REGISTRY" ] && [ "${REGISTRY: -1}" != "/" ]; then
  die "SLIPWAY_IMAGE_REGISTRY='$REGISTRY' must end with '/' (it is a prefix: '$REGISTRY/')"
fi
# docker tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
tag_re='^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'
[[ $TAG =~ $tag_re ]] || die "SLIPWAY_IMAGE_TAG='$TAG' is not a valid image tag"
[[ $COMMIT =~ $tag_re ]] || die "git commit '$COMMIT' is not a valid image tag; set SLIPWAY_GIT_COMMIT"
[ "$COMMIT" != unknown ] || [ "$verb" = tags ] || [ $dry_run -eq 1 ] \
  || die "no git commit found (not a git checkout?); set SLIPWAY_GIT_COMMIT"

ref() { echo "${REGISTRY}slipway-$1:$2"; }

run() {
  if [ $dry_run -eq 1 ]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

need_docker() {
  [ $dry_run -eq 1 ] && return
  command -v "$DOCKER" >/dev/null 2>&1 \
    || die "'$DOCKER' not found: install Docker (or set DOCKER to the client's path)"
  "$DOCKER" info >/dev/null 2>&1 \
    || die "Docker is not reachable ('$DOCKER info' failed; DOCKER_HOST='${DOCKER_HOST:-unset}'): start the Docker daemon or point DOCKER_HOST at one"
}

ecr_login() {
  local host=${REGISTRY%%/*}
  local ecr_re='^[0-9]{12}\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$'
  [[ $host =~ $ecr_re ]] || return 0
  local region=${BASH_REMATCH[2]}
  if [ $dry_run -eq 1 ]; then
    echo "aws ecr get-login-password --region $region | $DOCKER login --username AWS --password-stdin $host"
    return
  fi
  command -v aws >/dev/null 2>&1 || die "aws CLI not found: needed to log in to ECR host $host (or use --no-login)"
  aws ecr get-login-password --region "$region" \
    | "$DOCKER" login --username AWS --password-stdin "$host" >/dev/null \
    || die "ECR login to $host failed: check AWS credentials (aws sts get-caller-identity) and ecr:GetAuthorizationToken"
}

case "$verb" in
  tags)
    for name in "${names[@]}"; do
      ref "$name" "$TAG"
      [ "$COMMIT" = "$TAG" ] || ref "$name" "$COMMIT"
    done
    ;;
  build)
    need_docker
    build_args=(--build-arg "VERSION=$VERSION" --build-arg "GIT_COMMIT=$COMMIT"
                --build-arg "SOURCE_URL=$SOURCE_URL")
    [ -z "${PYTHON_BASE:-}" ] || build_args+=(--build-arg "PYTHON_BASE=$PYTHON_BASE")
    # shellcheck disable=SC2206 # DOCKER_BUILD_FLAGS is a list of flags on purpose
    extra=(${DOCKER_BUILD_FLAGS:-})
    for name in "${names[@]}"; do
      run "$DOCKER" build --file "$ROOT/images/$name.Dockerfile" "${build_args[@]}" \
        ${extra[@]+"${extra[@]}"} --tag "$(ref "$name" "$TAG")" --tag "$(ref "$name" "$COMMIT")" "$ROOT"
    done
    ;;
  push)
    [ -n "$REGISTRY" ] || die "SLIPWAY_IMAGE_REGISTRY is empty: set it to the registry to push to, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/"
    need_docker
    [ $login -eq 0 ] || ecr_login
    for name in "${names[@]}"; do
      run "$DOCKER" push "$(ref "$name" "$TAG")"
      [ "$COMMIT" = "$TAG" ] || run "$DOCKER" push "$(ref "$name" "$COMMIT")"
    done
    ;;
esac
