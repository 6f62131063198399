# The global nbgrader config of a deployment (deploy/jupyterhub/setup.sh fills in the two values).
#
# Every user's server reads it: the hub puts its folder on JUPYTER_CONFIG_PATH (on a machine with
# one hub, /etc/jupyter/nbgrader_config.py is the usual place for the same two lines).  Students'
# Assignment List, `nbgrader fetch_assignment`, `submit` and `fetch_feedback`, and the instructor's
# `release_assignment`, `collect` and `release_feedback` all meet in this exchange, under the course id.
c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "@COURSE_ID@"
# nbgrader's exchange; it must exist and be world-writable with the sticky bit (chmod 1777)
c.Exchange.root = "@EXCHANGE@"
