#!/usr/bin/env bash
# Remove a deployment made by setup.sh: stop its hub (and every server it spawned), delete the
# users it created (with their homes, the course directory among them), its course in the exchange
# (the exchange itself when setup.sh created it) and its state folder.  Safe to run twice.
#   deploy/jupyterhub/teardown.sh /srv/rmteach-hub/demo            # keeps /opt/rmteach-hub (the software)
#   deploy/jupyterhub/teardown.sh --purge /srv/rmteach-hub/demo    # and removes it too
set -uo pipefail
PURGE=0
if [ "${1:-}" = "--purge" ]; then PURGE=1; shift; fi
STATE="${1:?usage: teardown.sh [--purge] STATE_DIR}"
[ "$(id -u)" = 0 ] || { echo "teardown: run as root" >&2; exit 1; }
if [ ! -f "$STATE/deployment.json" ]; then
    echo "teardown: $STATE holds no deployment: nothing to remove"
    exit 0
fi
field() { /usr/bin/python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(" ".join(v) if isinstance(v, list) else v)' "$STATE/deployment.json" "$1"; }
EXCHANGE="$(field exchange)"; COURSE_ID="$(field course_id)"; CREATED_EXCHANGE="$(field created_exchange)"; PREFIX="$(field prefix)"
USERS="$(/usr/bin/python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' "$STATE/users.json" 2>/dev/null || true)"

# the hub: SIGTERM stops its proxy and the single-user servers it spawned
for pidfile in "$STATE/hub/jupyterhub.pid" "$STATE/hub/launcher.pid"; do
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
done
for _ in $(seq 1 40); do
    alive=0
    for pidfile in "$STATE/hub/jupyterhub.pid" "$STATE/hub/launcher.pid" "$STATE/hub/proxy.pid"; do
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.5
done
for pidfile in "$STATE/hub/jupyterhub.pid" "$STATE/hub/launcher.pid" "$STATE/hub/proxy.pid"; do
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
done

# the deployment's users: any process still running as one of them (a kernel, a terminal) ends first
for user in $USERS; do
    uid="$(id -u "$user" 2>/dev/null)" || continue
    for _ in 1 2 3; do
        pids="$(ps -o pid= -u "$uid" 2>/dev/null | tr -d ' ')"
        [ -z "$pids" ] && break
        kill -KILL $pids 2>/dev/null
        sleep 0.3
    done
    userdel --remove "$user" 2>/dev/null || userdel --force --remove "$user" 2>/dev/null || echo "teardown: could not remove user $user" >&2
done

if [ "$CREATED_EXCHANGE" = True ]; then
    rm -rf "$EXCHANGE"
    rmdir "$(dirname "$EXCHANGE")" 2>/dev/null
else
    rm -rf "${EXCHANGE:?}/${COURSE_ID:?}"
fi
rm -rf "$STATE"
rmdir "$(dirname "$STATE")" 2>/dev/null
if [ "$PURGE" = 1 ]; then rm -rf "$PREFIX"; fi
echo "teardown: removed $STATE (users: ${USERS:-none})$([ "$PURGE" = 1 ] && echo "; removed $PREFIX")"
