#!/bin/sh
# Chromium for the load test, standing in for visitors' browsers on their own machines.
#
# Linux shares the CPUs fairly between sessions ("autogroups"), not between processes:
# Playwright starts Chromium in a session of its own, so nine headless Chromiums rendering
# the pages took half of this 2-core machine from the session of the server, whatever
# their nice value. Their session at nice 10 (LOAD_BROWSER_NICE), like the training
# worker's, leaves them the CPU time the server does not use, as visitors' own machines
# would. Where autogroups are off, the plain nice value does the same.
nice_value="${LOAD_BROWSER_NICE:-10}"
echo "$nice_value" > /proc/self/autogroup 2>/dev/null
exec nice -n "$nice_value" "${CHROMIUM:-/usr/bin/chromium}" "$@"
