#!/usr/bin/env bash
# Start the hub of a deployment made by setup.sh, in the background; wait until it answers.
#   deploy/jupyterhub/start.sh /srv/rmteach-hub/demo
set -euo pipefail
STATE="${1:?usage: start.sh STATE_DIR (e.g. /srv/rmteach-hub/demo)}"
[ "$(id -u)" = 0 ] || { echo "start: run as root (the hub spawns servers as its users)" >&2; exit 1; }
[ -f "$STATE/deployment.json" ] || { echo "start: $STATE holds no deployment (run setup.sh)" >&2; exit 1; }
VENV="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["venv"])' "$STATE/deployment.json")"
PORT="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$STATE/deployment.json")"
PIDFILE="$STATE/hub/jupyterhub.pid"
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "start: the hub of $STATE is already running (pid $(cat "$PIDFILE"))"; exit 0
fi
cd "$STATE/hub"
# umask 022: what students submit is readable by the instructor who collects it
umask 022
PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin" setsid "$VENV/bin/jupyterhub" -f "$STATE/jupyterhub_config.py" \
    >"$STATE/hub/jupyterhub.log" 2>&1 < /dev/null &
echo $! > "$STATE/hub/launcher.pid"
for _ in $(seq 1 240); do
    if /usr/bin/python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
            "http://127.0.0.1:$PORT/hub/health" 2>/dev/null; then
        echo "start: hub up at http://127.0.0.1:$PORT/ (log: $STATE/hub/jupyterhub.log)"; exit 0
    fi
    kill -0 "$(cat "$STATE/hub/launcher.pid")" 2>/dev/null || break
    sleep 0.5
done
echo "start: the hub did not come up; the end of its log:" >&2
tail -30 "$STATE/hub/jupyterhub.log" >&2
exit 1
