#!/bin/sh
# Browser-test prerequisites, installed only when missing (idempotent; make test runs it):
# Debian's chromium (Playwright drives it; its own browser download does not work here) and
# axe-core from the committed lockfile into tests/browser/node_modules.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  (cd tests/browser && npm ci --silent --no-audit --no-fund)
fi
