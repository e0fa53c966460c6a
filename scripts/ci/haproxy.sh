#!/bin/sh
# Install Debian's haproxy for the replicas-behind-a-load-balancer fault test
# (tests/system/test_replicas_faults.py). Idempotent: does nothing when it is there.
# .ci/run calls this, then runs the suite with KAP_CDS_REQUIRE_HAPROXY=1 so the test cannot skip.
set -eu

if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
    echo "haproxy: $( (command -v haproxy >/dev/null 2>&1 && haproxy -v) || /usr/sbin/haproxy -v | head -n 1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends haproxy
/usr/sbin/haproxy -v | head -n 1
