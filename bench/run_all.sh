#!/bin/sh
# Every benchmark on one generated setup, results as JSON under bench/results/<name>/.
#   bench/run_all.sh /tmp/bench-200k-values-linear
set -eu
setup=$1
name=$(basename "$setup")
here=$(cd "$(dirname "$0")" && pwd)
out="$here/results/$name"
mkdir -p "$out"
cd "$here/.."
python=${PYTHON:-python}
"$python" bench/ingest.py "$setup" --json "$out/ingest.json"
"$python" bench/scrape.py "$setup" --json "$out/scrape.json"
"$python" bench/report.py "$setup" --json "$out/report.json"
"$python" bench/incremental.py "$setup" --json "$out/incremental.json"
