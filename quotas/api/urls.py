from django.urls import include, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from quotas.api import views


class Router(SimpleRouter):
    """Paths as written, with or without a trailing slash."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("allowances", views.AllowanceViewSet, basename="allowance")
router.register("model-quotas", views.ModelQuotaViewSet, basename="model-quota")
router.register("repo-limits", views.RepoLimitViewSet, basename="repo-limit")

REPO = r"(?P<repo>[A-Za-z0-9-]+/[A-Za-z0-9._-]+?)"
# Any text up to the optional trailing slash (newlines too): the views' validators then answer
# a malformed id with a 400 that says what is wrong, rather than a bare 404.
ANY = r"(?s:.+?)"

v1 = [
    re_path(r"^health/?$", views.HealthView.as_view(), name="health"),
    re_path(r"^check/?$", views.CheckView.as_view(), name="check"),
    re_path(r"^dispatch/?$", views.DispatchView.as_view(), name="dispatch"),
    re_path(r"^usage/?$", views.UsageReportView.as_view(), name="usage"),
    re_path(r"^repo-events/?$", views.RepoEventView.as_view(), name="repo-events"),
    re_path(
        rf"^usage/agents/(?P<agent_id>{ANY})/?$", views.AgentUsageView.as_view(), name="agent-usage"
    ),
    re_path(
        rf"^usage/models/(?P<model>{ANY})/?$", views.ModelUsageView.as_view(), name="model-usage"
    ),
    re_path(rf"^usage/repos/{REPO}/?$", views.RepoUsageView.as_view(), name="repo-usage"),
    re_path(r"^jobs/?$", views.JobListView.as_view(), name="jobs"),
    re_path(
        r"^agents/(?P<agent_id>[^/]+?)/reset/?$", views.AgentResetView.as_view(), name="agent-reset"
    ),
    re_path(r"^", include(router.urls)),
]

urlpatterns = [
    re_path(r"^api/v1/", include(v1)),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
