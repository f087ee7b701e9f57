"""Gunicorn's configuration for Kartoteka's web processes (docs/deploy.md).

Started as ``gunicorn --config deploy/gunicorn.conf.py config.wsgi`` by the
systemd unit, the Procfile and the deployment drill alike. The environment tunes
it: ``GUNICORN_BIND`` (default 127.0.0.1:8000, where nginx proxies to),
``WEB_CONCURRENCY`` (worker processes, default 2 per CPU + 1, at most 8) and
``GUNICORN_THREADS`` (threads per worker, default 4).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(
    os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
)
# Threads: a request waiting on PostgreSQL does not hold a whole process.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Uploads of large import files and CSV exports take a while; nothing should take
# longer than this (a stuck request is killed and logged).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# SIGTERM: requests under way get this long to finish (systemd waits longer).
graceful_timeout = 30
# nginx keeps connections to us open between requests.
keepalive = 5
# A worker is replaced after this many requests (with jitter, not all at once):
# a slow leak in a library never grows without bound.
max_requests = 2000
max_requests_jitter = 200
# Django's logs are JSON lines on stderr (LOGGING); gunicorn's own error log goes
# there too. The access log is nginx's (it sees the client and the TLS side).
errorlog = "-"
accesslog = None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Only the local proxy may say which scheme the client used; Django itself reads
# X-Forwarded-Proto through USE_X_FORWARDED_PROTO (SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Workers' heartbeat files in memory, not on a disk that may stall (gunicorn's advice).
SHM = "/dev/shm"  # noqa: S108 - gunicorn's own files, not shared temporary data
worker_tmp_dir = SHM if os.path.isdir(SHM) else None
proc_name = "kartoteka-web"
# gunicorn 24+ opens a control socket in the user's home by default: systemd's
# ProtectHome hides it, and two servers on one host would share it. Signals
# (HUP to reload, TERM to stop) are all the units use.
control_socket_disable = True
