"""gunicorn settings for the quotas service; each can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# A request that hangs longer than this is a bug or a dead database; the worker is replaced.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# "-" logs requests to stdout; an empty value turns the access log off (the service's own
# structured line per API request is on the 'quotas.api' logger either way).
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
# gunicorn 23+ opens a control socket at one fixed path per user; two servers on one machine
# would fight over it, and nothing here uses it.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "off") != "on"
