#!/usr/bin/env bash
# One campaign in N shards with GNU parallel: on this machine, or on several with -S.
#
#   examples/parallel/send-shards.sh template.yaml audience.csv spring-sale 4
#   HOSTS=host1,host2 examples/parallel/send-shards.sh ...   # over ssh; each host needs pushctl,
#                                                            # the files and the credentials
#
# Every shard has its own journal (shards/<campaign>-<I>.sqlite3, on the host that sent it) and
# may be re-run alone after a failure: it resumes from its journal. At the end the journals are
# combined into one campaign (`runs merge` names missing or unfinished shards and exits 1).
set -euo pipefail
template=$1 audience=$2 campaign=$3 shards=${4:-4}
mkdir -p shards
hosts=()
if [ -n "${HOSTS:-}" ]; then
  hosts=(-S "$HOSTS" --transferfile "$template" --transferfile "$audience" --return "shards/$campaign-{}.sqlite3")
fi
# --workers 1: parallel already starts one pushctl per shard; give each more with --workers N.
# Exit code 1 (some tokens invalid) still means the shard was sent.
parallel --jobs "${JOBS:-$shards}" --halt never --tagstring 'shard {4}/{5}' "${hosts[@]}" \
  'pushctl send {1} --audience {2} --campaign {3} --shard {4}/{5} --journal shards/{3}-{4}.sqlite3 \
     --workers 1 --output table --show failures --limit 10 || [ $? -eq 1 ]' \
  ::: "$template" ::: "$audience" ::: "$campaign" ::: $(seq 0 $((shards - 1))) ::: "$shards"
pushctl runs merge "shards/$campaign-*.sqlite3" --into "$campaign.sqlite3"
pushctl --output table runs show "$campaign" --journal "$campaign.sqlite3" --show none
