#!/usr/bin/env bash
# examples/shop/demo.sh LOAM URL [NAME]: what `make demo` runs.  Migrates
# the shop's database, seeds it twice (the second run changes nothing),
# then plays the N+1 incident.  Every step is safe to run again on the
# same database.  NAME says which database it is, so that no password of
# the URL is printed.
set -euo pipefail
loam=$1 url=$2 name=${3:-the database given}
case $loam in */*) loam=$(cd "$(dirname "$loam")" && pwd)/$(basename "$loam") ;; esac
cd "$(dirname "$0")"
step() { printf '\n==> %s\n' "$*"; "$loam" --db "$url" "$@"; }
printf 'loam demo: the shop of examples/shop, on %s\n' "$name"
step migrate up
step migrate status
step seed
step seed
step run scripts/incident.lua
