#!/usr/bin/env bash
# The paper-scale campaign (registry group 'paper' of reproduce.py): start it, or resume every
# unfinished run of it where its checkpoint is. One command, safe to repeat:
#
#     bash experiments/campaign.sh [DIR]         # DIR: $MIIII_CAMPAIGN, else ../miiii-campaign beside this checkout
#     bash experiments/campaign.sh --stop [DIR]  # stop the runner and its runs at their checkpoints
#     bash experiments/campaign.sh --fresh [DIR] # a campaign of your own: the carried state is not used
#
# Runs carried in results/campaign_state/ (python experiments/campaign.py --carry, committed) are put
# back first where DIR lacks them, and a new DIR/code is frozen at the carried commit (so a clone of
# this repository goes on with the campaign its RESULTS.md reports; --fresh starts one from HEAD).
#
# DIR/code  a frozen clone of this repository at the commit the campaign started from (a clone, not a
#           `git worktree`: a worktree's registration lives in this checkout's .git and is lost with it)
# DIR/runs  the run directories (outside the working tree; checkpoints live here)
# DIR/logs  one log per run;  DIR/runner.log  the runner's own lines
# The runner runs under nice -n 19, two runs at a time with one BLAS thread each, in the background;
# a second invocation while one is running says so and exits 0. Copy what has finished into
# results/runs/ and write the progress table with `python experiments/campaign.py DIR --sync`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
stop=0 fresh=0
case "${1:-}" in
    --stop) stop=1; shift ;;
    --fresh) fresh=1; shift ;;
    -*) echo "campaign.sh: unknown option ${1} (--stop, --fresh or a directory)" >&2; exit 2 ;;
esac
dir="${1:-${MIIII_CAMPAIGN:-$(dirname "$here")/miiii-campaign}}"
if [ "$stop" = 1 ]; then
    # SIGTERM: the runner cancels its tasks, each trainer checkpoints and stops, then the runner exits
    pid="$(cat "$dir/runner.pid" 2>/dev/null || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "campaign.sh: no runner is running in $dir"
        exit 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 180); do
        kill -0 "$pid" 2>/dev/null || { echo "campaign runner $pid stopped; its runs are at their checkpoints"; exit 0; }
        sleep 1
    done
    echo "campaign.sh: the runner $pid has not stopped after 180 s (see $dir/runner.log)" >&2
    exit 1
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
state="$here/results/campaign_state/state.json"
if [ "$fresh" = 1 ]; then
    if [ -d "$dir/runs" ] && [ -n "$(ls -A "$dir/runs")" ]; then
        echo "campaign.sh: $dir already holds a campaign; --fresh starts one in a new directory" >&2
        exit 2
    fi
    state=/dev/null
fi
if [ ! -d "$dir/code/.git" ]; then
    # a campaign carried from another machine (campaign.py --carry) goes on from its own commit
    commit="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["code_commit"])' "$state" 2>/dev/null \
              || git -C "$here" rev-parse HEAD)"
    if ! git -C "$here" cat-file -e "$commit^{commit}" 2>/dev/null; then
        echo "campaign.sh: $state names commit $commit, which this repository lacks" >&2
        exit 2
    fi
    if [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ]; then
        echo "campaign.sh: $here has uncommitted changes; the campaign starts from a commit (commit first)" >&2
        exit 2
    fi
    git clone --quiet "$here" "$dir/code"
    git -C "$dir/code" checkout --quiet --detach "$commit"
    echo "froze the code at $commit in $dir/code"
fi
if [ -f "$dir/code/experiments/runner.py" ] && ! python3 -c "import distributed" 2>/dev/null; then
    # a frozen copy with the Dask runner makes its runs on a local Dask cluster
    echo "campaign.sh: the runner needs Dask: pip install -r experiments/requirements-sweep.txt" >&2
    exit 2
fi
exec 9>"$dir/runner.lock"
if ! flock -n 9; then
    echo "campaign.sh: a runner is already running in $dir (see $dir/runner.log)"
    exit 0
fi
# runs carried from a machine that was not kept come back where this one lacks them (campaign.py)
if [ "$state" != /dev/null ]; then
    python3 "$here/experiments/campaign.py" "$dir" --restore | tee -a "$dir/runner.log"
fi
cd "$dir/code"
echo "$(date -u +%FT%TZ) runner starts at $(git rev-parse HEAD)" >> "$dir/runner.log"
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg \
    nohup nice -n 19 python3 experiments/reproduce.py --only paper --runs-dir "$dir/runs" --jobs 2 --threads 1 \
    >> "$dir/runner.log" 2>&1 &
echo $! > "$dir/runner.pid"
# the background runner inherits fd 9, so the lock is held until it (and the runs it started) end
echo "campaign runner started in the background (pid $!); runs in $dir/runs, lines in $dir/runner.log"
