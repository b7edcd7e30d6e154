#!/usr/bin/env bash
# Headless-browser tests (report rendering, the web page) need Debian's Chromium. Install it when missing and we
# may (root, or passwordless sudo); otherwise say so — those tests then skip with a message.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no chromium and no apt-get; browser tests will be skipped" >&2; exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: chromium missing and not root; browser tests will be skipped (apt-get install chromium)" >&2; exit 0
  fi
fi
echo "installing Debian chromium for the browser tests…" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null 2>&1 && \
  $SUDO apt-get install -y -q chromium >/dev/null 2>&1; } || echo "note: chromium install failed; browser tests will be skipped" >&2
exit 0
