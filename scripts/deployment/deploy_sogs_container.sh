#!/usr/bin/env bash
# Build the SOG compression image, tag it with the git commit and `latest`, and push it to Amazon ECR.
#
# Usage: scripts/deployment/deploy_sogs_container.sh [options]
#   --account ID       AWS account (default: $AWS_ACCOUNT_ID, else `aws sts get-caller-identity`)
#   --region REGION    AWS region (default: $AWS_REGION, else $AWS_DEFAULT_REGION)
#   --repository NAME  ECR repository (default: $ECR_REPOSITORY, else sogs-compressor); created if missing
#   --minimal          build Dockerfile.minimal (CPU image); tags get a -minimal suffix
#   --test-only        lint, build locally and run the image's self-test (test_sogs_local.py); no AWS, no push
#   --no-lint          with --test-only: skip scripts/lint.sh
#   --dry-run          print every command instead of running it (docker and aws are never called)
#   --platform P       build platform (default linux/amd64: SageMaker GPU hosts are x86_64)
#   -h, --help         this help
#
# Jobs should use the commit tag printed at the end (or the digest), never `latest`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

ACCOUNT="${AWS_ACCOUNT_ID:-}"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
REPOSITORY="${ECR_REPOSITORY:-sogs-compressor}"
PLATFORM="linux/amd64"
MINIMAL=0
TEST_ONLY=0
DRY_RUN=0
LINT=1

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 2
}

# run CMD...: run a command, or print it (shell-quoted) under --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

need_value() {
    [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#-}" = "$2" ] || die "$1 needs a value"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --account) need_value "$@"; ACCOUNT=$2; shift ;;
        --region) need_value "$@"; REGION=$2; shift ;;
        --repository) need_value "$@"; REPOSITORY=$2; shift ;;
        --platform) need_value "$@"; PLATFORM=$2; shift ;;
        --minimal) MINIMAL=1 ;;
        --test-only) TEST_ONLY=1 ;;
        --no-lint) LINT=0 ;;
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

cd "$ROOT"

if [ "$MINIMAL" = 1 ]; then
    DOCKERFILE=Dockerfile.minimal
    SUFFIX=-minimal
else
    DOCKERFILE=Dockerfile
    SUFFIX=""
fi
[ -f "$DOCKERFILE" ] || die "$DOCKERFILE not found in $ROOT"

# Image tag: short commit, with -dirty when the working tree has uncommitted changes.
command -v git >/dev/null 2>&1 || die "git not found: the image is tagged with the commit it was built from"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null) || die "$ROOT is not a git checkout with a commit: cannot tag the image"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    COMMIT="$COMMIT-dirty"
fi
TAG="$COMMIT$SUFFIX"
LATEST="latest$SUFFIX"
[[ "$REPOSITORY" =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || die "bad repository name '$REPOSITORY' (lower-case letters, digits, . _ - /)"

if [ "$TEST_ONLY" = 1 ]; then
    if [ "$LINT" = 1 ]; then
        run bash scripts/lint.sh
    fi
    IMAGE="$REPOSITORY:$TAG"
    run docker build --platform "$PLATFORM" -f "$DOCKERFILE" -t "$IMAGE" .
    # The self-test runs on the CPU so it works on build machines without a GPU.
    run docker run --rm --entrypoint python -e SOGS_DEVICE=cpu "$IMAGE" /app/test_sogs_local.py --no-docker --device cpu
    if [ "$DRY_RUN" = 0 ]; then
        printf 'test-only: %s built and passed its self-test (not pushed)\n' "$IMAGE"
    fi
    exit 0
fi

[ -n "$REGION" ] || die "no AWS region: pass --region or set AWS_REGION"
if [ -z "$ACCOUNT" ]; then
    if [ "$DRY_RUN" = 1 ]; then
        run aws sts get-caller-identity --query Account --output text
        ACCOUNT="<account>"
    else
        command -v aws >/dev/null 2>&1 || die "no AWS account: pass --account or set AWS_ACCOUNT_ID (the aws CLI is not installed to look it up)"
        ACCOUNT=$(aws sts get-caller-identity --query Account --output text 2>/dev/null) \
            || die "no AWS account: pass --account, set AWS_ACCOUNT_ID, or configure credentials for 'aws sts get-caller-identity'"
    fi
fi
if [ "$DRY_RUN" = 0 ]; then
    [[ "$ACCOUNT" =~ ^[0-9]{12}$ ]] || die "bad AWS account id '$ACCOUNT' (12 digits expected)"
    command -v docker >/dev/null 2>&1 || die "docker not found"
    command -v aws >/dev/null 2>&1 || die "aws CLI not found"
fi

REGISTRY="$ACCOUNT.dkr.ecr.$REGION.amazonaws.com"
IMAGE="$REGISTRY/$REPOSITORY"

# Build first: a broken build should not create repositories or log in anywhere.
run docker build --platform "$PLATFORM" -f "$DOCKERFILE" -t "$IMAGE:$TAG" -t "$IMAGE:$LATEST" .

if [ "$DRY_RUN" = 1 ]; then
    run aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY"
    printf '+ (if missing)'
    printf ' %q' aws ecr create-repository --region "$REGION" --repository-name "$REPOSITORY" \
        --image-scanning-configuration scanOnPush=true
    printf '\n'
    printf '+ aws ecr get-login-password --region %q | docker login --username AWS --password-stdin %q\n' \
        "$REGION" "$REGISTRY"
else
    if ! aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY" >/dev/null 2>&1; then
        printf 'creating ECR repository %s in %s\n' "$REPOSITORY" "$REGION"
        aws ecr create-repository --region "$REGION" --repository-name "$REPOSITORY" \
            --image-scanning-configuration scanOnPush=true >/dev/null
    fi
    aws ecr get-login-password --region "$REGION" \
        | docker login --username AWS --password-stdin "$REGISTRY"
fi

run docker push "$IMAGE:$TAG"
run docker push "$IMAGE:$LATEST"

if [ "$DRY_RUN" = 0 ]; then
    DIGEST=$(docker image inspect --format '{{index .RepoDigests 0}}' "$IMAGE:$TAG" 2>/dev/null || true)
    printf 'pushed %s:%s\n' "$IMAGE" "$TAG"
    if [ -n "$DIGEST" ]; then
        printf 'digest %s\n' "$DIGEST"
    fi
fi
printf 'image for jobs: %s:%s\n' "$IMAGE" "$TAG"
