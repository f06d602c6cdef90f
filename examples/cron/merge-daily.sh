#!/usr/bin/env bash
# Collect the shard journals of the morning's campaign from the sending hosts and merge them.
# (sqlite3 .backup takes a consistent copy even while a shard is still being sent.)
set -euo pipefail
mkdir -p /var/lib/pushctl/daily
for host in push1 push2 push3; do
  ssh "$host" "sqlite3 /var/lib/pushctl/daily-shard.sqlite3 '.backup /tmp/daily-shard.sqlite3'"
  scp -q "$host:/tmp/daily-shard.sqlite3" "/var/lib/pushctl/daily/$host.sqlite3"
done
# The journals hold one campaign per day: merge today's.
pushctl runs merge '/var/lib/pushctl/daily/*.sqlite3' --campaign "daily-$(date +%F)" \
  --into /var/lib/pushctl/daily.sqlite3
