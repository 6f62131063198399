# JupyterHub configuration of one rmteach deployment (copied next to its deployment.json by setup.sh).
#
# One machine, real Unix users: PAM checks their passwords, LocalProcessSpawner starts each
# user's JupyterLab as that user.  Everything listens on 127.0.0.1 only.  For production put a
# TLS proxy in front and use SystemdSpawner (per-user memory and CPU limits): deploy/README.md.
import json
import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "deployment.json")) as fh:
    d = json.load(fh)

# --- network: the proxy serves 127.0.0.1:<port>; the hub and the proxy's API stay on 127.0.0.1 too
c.JupyterHub.bind_url = f"http://127.0.0.1:{d['port']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{d['hub_port']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{d['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [d["chp"]]
c.ConfigurableHTTPProxy.pid_file = os.path.join(d["state"], "hub", "proxy.pid")

# --- the hub's own state, private to root
c.JupyterHub.db_url = f"sqlite:///{os.path.join(d['state'], 'hub', 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(d["state"], "hub", "cookie_secret")
c.JupyterHub.pid_file = os.path.join(d["state"], "hub", "jupyterhub.pid")

# --- who may log in: the deployment's instructor and students, with their Unix passwords (PAM)
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False  # no login sessions (no systemd-logind needed)
c.Authenticator.allowed_users = {d["instructor"], *d["students"]}

# --- each user's JupyterLab, as that user, from the deployment's venv
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [os.path.join(d["venv"], "bin", "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
COMMON = os.path.join(d["state"], "jupyter", "common")
INSTRUCTOR = os.path.join(d["state"], "jupyter", "instructor")


def _config_path(spawner):
    """Students read the common config; the instructor reads hers first (formgrader, course root, CSP)."""
    if spawner.user.name == d["instructor"]:
        return os.pathsep.join([INSTRUCTOR, COMMON])
    return COMMON


c.Spawner.environment = {
    # nbgrader runs `alembic` from PATH when it creates a gradebook; kernels run the venv's python
    "PATH": os.pathsep.join([os.path.join(d["venv"], "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
    "JUPYTER_CONFIG_PATH": _config_path,
}
