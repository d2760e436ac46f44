#!/usr/bin/env bash
# The remote model registry: the `model-registry` branch of this repository, synced with ./registry.
#   registry-branch.sh pull            fetch the branch into ./registry (an empty registry before the first deploy)
#   registry-branch.sh push MESSAGE    commit every change in ./registry and push it (fails if the branch moved)
# GITHUB_TOKEN, when set, is sent as an HTTP header for these git commands only: it is never written to disk.
set -euo pipefail

BRANCH="${REGISTRY_BRANCH:-model-registry}"
DIR="${REGISTRY_DIR:-registry}"

git_with_token() {
  # why: checkout runs with persist-credentials: false, so the token is given to git per command
  if [ -n "${GITHUB_TOKEN:-}" ]; then
    local basic
    basic=$(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 | tr -d '\n')
    echo "::add-mask::$basic"
    GIT_CONFIG_COUNT=1 \
      GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL:-https://github.com}/.extraheader" \
      GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $basic" \
      git "$@"
  else
    git "$@"
  fi
}

pull() {
  local url status=0
  url=$(git remote get-url origin)
  rm -rf "$DIR"
  git init --quiet --initial-branch="$BRANCH" "$DIR"
  git -C "$DIR" remote add origin "$url"
  git_with_token -C "$DIR" ls-remote --exit-code --heads origin "refs/heads/$BRANCH" > /dev/null || status=$?
  case "$status" in
    0)
      git_with_token -C "$DIR" fetch --quiet --depth=1 origin "refs/heads/$BRANCH"
      git -C "$DIR" checkout --quiet -B "$BRANCH" FETCH_HEAD
      echo "registry: $BRANCH at $(git -C "$DIR" log -1 --format='%h %s')"
      ;;
    2)
      echo "registry: no $BRANCH branch yet, starting an empty registry (first deploy)"
      ;;
    *)
      echo "::error::cannot read the $BRANCH branch of $url (git ls-remote exit $status)"
      exit 1
      ;;
  esac
  # written on every pull, so a branch made by an older version of this script gets the full list: the lock and the
  # temp files of a writer killed mid-promotion (stages/.<stage>-*) or mid-registration (models/.incoming-*)
  printf '.lock\n.incoming-*\nstages/.*\n' > "$DIR/.gitignore"
}

push() {
  local message="$1"
  git -C "$DIR" add --all
  if git -C "$DIR" diff --cached --quiet; then
    echo "registry: nothing changed, nothing to push"
    return
  fi
  git -C "$DIR" \
    -c user.name="github-actions[bot]" \
    -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
    commit --quiet -m "$message"
  if ! git_with_token -C "$DIR" push --quiet origin "HEAD:refs/heads/$BRANCH"; then
    echo "::error::the $BRANCH branch moved since this job read it; nothing was changed, re-run the workflow"
    exit 1
  fi
  echo "registry: pushed $(git -C "$DIR" log -1 --format='%h %s')"
}

case "${1:-}" in
  pull) pull ;;
  push) push "${2:?push needs a commit message}" ;;
  *)
    echo "usage: $0 pull | push MESSAGE" >&2
    exit 2
    ;;
esac
