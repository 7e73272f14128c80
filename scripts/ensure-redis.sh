#!/bin/sh
# Queue-test prerequisite, installed only when missing (idempotent; make test runs it): Debian's
# redis-server, which tests/test_queue_backends.py starts on a free loopback port per run (the
# package's own service is not used and need not be running).
set -eu
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends redis-server
fi
