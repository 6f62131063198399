#!/usr/bin/env bash
# Build one JupyterHub + nbgrader deployment of the rmteach course on this machine (root only).
#
#   deploy/jupyterhub/setup.sh            # the demo of `make hub` (settings below)
#   RMTEACH_HUB_NAME=fall26 RMTEACH_HUB_INSTRUCTOR=ada RMTEACH_HUB_STUDENTS="s1 s2" deploy/jupyterhub/setup.sh
#
# It installs the software once (shared by every deployment, rebuilt when rmteach changes):
#   /opt/rmteach-hub/venv   Debian's python3 venv: jupyterhub (PyPI), rmteach (non-editable) and
#                           the course's packages (jupyterlab, nbgrader, torch==2.13.0, ...), readable by all
#   configurable-http-proxy from the npm registry (npm install -g), when it is missing
# and then the deployment itself, everything recorded in $STATE (/srv/rmteach-hub/<name>/):
#   - real Unix users: one instructor and the students (homes 0700, generated passwords for PAM,
#     listed in $STATE/logins, mode 0600); users that already exist are refused, never adopted;
#   - nbgrader's exchange at $EXCHANGE (default /srv/nbgrader/exchange, nbgrader's default root), mode 1777;
#   - the course directory ~instructor/<course id>/ (nbgrader_config.py and source/ from assignments/),
#     owned by the instructor, mode 0700;
#   - $STATE/jupyter/common: the global nbgrader config (course id, exchange root) and the lab and
#     server extension settings every user gets (Assignment List and Validate; no formgrader);
#     $STATE/jupyter/instructor: the instructor's (formgrader, Create Assignment, course list, the
#     course root, and the Content-Security-Policy that lets the formgrader panel load);
#   - $STATE/jupyterhub_config.py and deployment.json: the hub, bound to 127.0.0.1:$PORT.
# Start it with deploy/jupyterhub/start.sh $STATE; remove it with deploy/jupyterhub/teardown.sh $STATE.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
NAME="${RMTEACH_HUB_NAME:-demo}"
PREFIX="${RMTEACH_HUB_PREFIX:-/opt/rmteach-hub}"
STATE="${RMTEACH_HUB_STATE:-/srv/rmteach-hub/$NAME}"
EXCHANGE="${RMTEACH_HUB_EXCHANGE:-/srv/nbgrader/exchange}"
COURSE_ID="${RMTEACH_HUB_COURSE_ID:-rmteach}"
INSTRUCTOR="${RMTEACH_HUB_INSTRUCTOR:-rmt-teacher}"
STUDENTS="${RMTEACH_HUB_STUDENTS:-rmt-alice rmt-bob}"
PORT="${RMTEACH_HUB_PORT:-8000}"
# nbgrader's LateSubmissionPlugin.penalty_method for this course: "zero" (a late notebook scores 0) or "none"
LATE_PENALTY="${RMTEACH_HUB_LATE_PENALTY:-zero}"
PYTHON=/usr/bin/python3   # Debian's: every user can run it (this machine's own Python is under 0700 /root)
VENV="$PREFIX/venv"

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it creates Unix users, the exchange and a hub that spawns servers as those users)"
case "$LATE_PENALTY" in zero|none) ;; *) die "RMTEACH_HUB_LATE_PENALTY must be zero or none, not $LATE_PENALTY" ;; esac
[ -e "$STATE/deployment.json" ] && die "$STATE already holds a deployment: remove it first (deploy/jupyterhub/teardown.sh $STATE)"

# --- software, shared by all deployments ------------------------------------------------------
apt_updated=0
need_deb() {  # need_deb PACKAGE
    [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
[ -x "$PYTHON" ] || need_deb python3
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || need_deb python3-venv
command -v npm >/dev/null || need_deb npm
CHP="$(command -v configurable-http-proxy || true)"
if [ -z "$CHP" ]; then
    say "installing configurable-http-proxy from the npm registry"
    npm install -g --silent configurable-http-proxy >/dev/null
    CHP="$(command -v configurable-http-proxy)" || die "npm installed configurable-http-proxy but it is not on PATH"
fi

install -d -m 0755 "$PREFIX"
exec 9>"$PREFIX/.lock"
flock 9   # two set-ups at once build the venv one after the other
# the packages are installed again when pyproject.toml changes, rmteach alone when its sources change
want_deps="$(cd "$REPO" && sha256sum pyproject.toml | cut -c1-16)"
want_src="$(cd "$REPO" && find rmteach -name '*.py' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
have_deps="$(cat "$VENV/.rmteach-deps" 2>/dev/null || true)"
have_src="$(cat "$VENV/.rmteach-src" 2>/dev/null || true)"
if [ "$want_deps" != "$have_deps" ] || [ "$want_src" != "$have_src" ]; then
    # rmteach is installed from a clean copy of its sources, so nothing is written into the repository
    src="$(mktemp -d)"
    cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/rmteach" "$src/"
    rm -rf "$src/rmteach.egg-info"; find "$src" -name __pycache__ -prune -exec rm -rf {} +
    if [ "$want_deps" != "$have_deps" ]; then
        say "building $VENV (Debian's python3; jupyterhub, rmteach and the course's packages)"
        [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --no-warn-script-location 'jupyterhub>=5,<7' "$src" 2>&1 | grep -v "^WARNING: Location" || true
    else
        say "installing the changed rmteach into $VENV"
    fi
    "$VENV/bin/pip" install --quiet --no-deps --force-reinstall "$src" 2>&1 | grep -v "^WARNING: Location" || true
    rm -rf "$src"
    "$VENV/bin/python" -c 'import jupyterhub, nbgrader, rmteach.grading.sandbox' || die "the venv at $VENV does not import jupyterhub, nbgrader and rmteach"
    # JupyterLab for every user of this venv: no news or update pop-ups
    install -d -m 0755 "$VENV/share/jupyter/lab/settings"
    echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
        > "$VENV/share/jupyter/lab/settings/overrides.json"
    echo "$want_deps" > "$VENV/.rmteach-deps"
    echo "$want_src" > "$VENV/.rmteach-src"
fi
chmod -R a+rX "$PREFIX"
flock -u 9

# --- the deployment -------------------------------------------------------------------------------
install -d -m 0755 "$(dirname "$STATE")"
install -d -m 0755 "$STATE"
install -d -m 0700 "$STATE/hub"
# deployment.json first: from here on, teardown.sh can undo whatever a failure leaves behind
created_exchange=0
[ -d "$EXCHANGE" ] || created_exchange=1
COURSE="/home/$INSTRUCTOR/$COURSE_ID"
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
"$PYTHON" - "$STATE/deployment.json" <<PY
import json, sys
json.dump({
    "name": "$NAME", "state": "$STATE", "prefix": "$PREFIX", "venv": "$VENV", "chp": "$CHP",
    "exchange": "$EXCHANGE", "created_exchange": bool($created_exchange), "course_id": "$COURSE_ID",
    "course": "$COURSE", "instructor": "$INSTRUCTOR", "students": "$STUDENTS".split(),
    "port": int("$PORT"), "hub_port": int("$(free_port)"), "proxy_api_port": int("$(free_port)"),
    "late_penalty": "$LATE_PENALTY",
}, open(sys.argv[1], "w"), indent=1)
PY
echo "[]" > "$STATE/users.json"   # teardown reads what was created, and removes only that
: > "$STATE/logins"; chmod 0600 "$STATE/logins"

created_users=()
record_users() { "$PYTHON" -c 'import json,sys; json.dump(sys.argv[2:], open(sys.argv[1], "w"))' "$STATE/users.json" "${created_users[@]}"; }
for user in $INSTRUCTOR $STUDENTS; do
    id "$user" >/dev/null 2>&1 && die "user $user already exists: pick other names (RMTEACH_HUB_INSTRUCTOR / RMTEACH_HUB_STUDENTS)"
done
for user in $INSTRUCTOR $STUDENTS; do
    useradd --create-home --shell /bin/bash --user-group "$user"
    created_users+=("$user"); record_users
    chmod 0700 "/home/$user"
    password="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(12))')"
    echo "$user:$password" | chpasswd
    echo "$user $password" >> "$STATE/logins"
done

# nbgrader's exchange: world-writable with the sticky bit, as nbgrader requires
install -d -m 0755 "$(dirname "$EXCHANGE")"
install -d -m 1777 "$EXCHANGE"
chmod 1777 "$EXCHANGE"

# the course directory: the instructor's, closed to everyone else
install -d -m 0700 -o "$INSTRUCTOR" -g "$INSTRUCTOR" "$COURSE"
cp -r "$REPO/assignments/source" "$COURSE/source"
find "$COURSE/source" -name .ipynb_checkpoints -prune -exec rm -rf {} +
{
    cat "$REPO/assignments/nbgrader_config.py"
    printf '\n# --- added by deploy/jupyterhub/setup.sh for this deployment -----------------------\n'
    printf '# Late submissions (due dates: nbgrader db assignment add NAME --duedate=...):\n'
    printf 'c.LateSubmissionPlugin.penalty_method = "%s"\n' "$LATE_PENALTY"
} > "$COURSE/nbgrader_config.py"
chown -R "$INSTRUCTOR:$INSTRUCTOR" "$COURSE"
chmod -R go-rwx "$COURSE"

# configuration every user's server reads (JUPYTER_CONFIG_PATH, set by the hub), and the instructor's
J="$STATE/jupyter"
install -d -m 0755 "$J" "$J/common" "$J/common/labconfig" "$J/instructor" "$J/instructor/labconfig"
sed -e "s|@COURSE_ID@|$COURSE_ID|g" -e "s|@EXCHANGE@|$EXCHANGE|g" "$HERE/nbgrader_config.py" > "$J/common/nbgrader_config.py"
cp "$HERE/common/page_config.json" "$J/common/labconfig/page_config.json"
cp "$HERE/common/jupyter_server_config.json" "$J/common/jupyter_server_config.json"
cp "$HERE/instructor/page_config.json" "$J/instructor/labconfig/page_config.json"
cp "$HERE/instructor/jupyter_server_config.json" "$J/instructor/jupyter_server_config.json"
printf 'c = get_config()  # noqa: F821\n# the course directory this instructor grades (formgrader, nbgrader commands anywhere)\nc.CourseDirectory.root = "%s"\n' \
    "$COURSE" > "$J/instructor/nbgrader_config.py"
chmod -R a+rX "$J"
cp "$HERE/jupyterhub_config.py" "$STATE/jupyterhub_config.py"

say "deployment $NAME in $STATE: instructor $INSTRUCTOR, students: $STUDENTS; exchange $EXCHANGE; course $COURSE"
