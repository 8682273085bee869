from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import path
from django.utils import timezone

from quotas import exports
from quotas.dashboard import dashboard_context
from quotas.vocabulary import Permission


class QuotasAdminSite(admin.AdminSite):
    """The Django admin, opening on the budget dashboard, with the usage exports."""

    site_header = "quotas"
    site_title = "quotas"
    index_title = "Dashboard"
    index_template = "admin/quotas/index.html"
    # The home page lists the models already; the side menu would take a quarter of an 800px
    # screen from the tables.
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        context = {
            **dashboard_context(now=timezone.now()),
            "can_export": self.can_export(request.user),
            **(extra_context or {}),
        }
        return super().index(request, context)

    @staticmethod
    def can_export(user) -> bool:
        return user.has_perm(Permission.EXPORT_USAGE.full_name)

    def get_urls(self):
        export = self.admin_view(self.export)
        return [
            path("export/agent-usage.csv", export, {"kind": "agent"}, name="export_agent_usage"),
            path("export/model-usage.csv", export, {"kind": "model"}, name="export_model_usage"),
            *super().get_urls(),
        ]

    def export(self, request, kind):
        if not self.can_export(request.user):
            raise PermissionDenied
        return exports.usage_csv(request, kind)
