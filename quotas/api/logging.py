"""One structured log line per API request: method, path, status, agent, decision, duration.

The line never holds a header or a body, so neither API keys nor anything else a client sent
beyond the path can end up in the logs.
"""

import json
import logging
import time

logger = logging.getLogger("quotas.api")


def note(request, *, agent: str = "", decision: str = "") -> None:
    """Let the log line of this request say which agent it was about and what was decided."""
    django_request = getattr(request, "_request", request)
    django_request.quotas_log = {"agent": agent, "decision": decision}


class APIRequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        noted = getattr(request, "quotas_log", {})
        logger.info(
            json.dumps(
                {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "agent": noted.get("agent", ""),
                    "decision": noted.get("decision", ""),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
        )
        return response
