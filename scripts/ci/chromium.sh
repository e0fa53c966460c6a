#!/bin/sh
# Install Debian's chromium for the headless governance-page test
# (tests/report/test_governance_chromium.py). Idempotent: does nothing when it is there.
# .ci/run calls this, then runs the suite with KAP_CDS_REQUIRE_CHROMIUM=1 so the test cannot skip.
set -eu

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    echo "chromium: $(chromium --version 2>/dev/null || /usr/bin/chromium --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
chromium --version
