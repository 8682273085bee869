from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.urls import path
from django.utils import timezone

from quotas import exports
from quotas.dashboard import RangeForm, dashboard_context
from quotas.roles import RoleLoginForm, may_use_admin
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
    # There is no public site to go to.
    site_url = None
    login_form = RoleLoginForm

    def has_permission(self, request):
        """Superusers and the people holding a role, whether or not "Staff status" is ticked."""
        return may_use_admin(request.user)

    def index(self, request, extra_context=None):
        """The dashboard; a chart range it does not offer is shown again with why (400)."""
        chart_range = RangeForm(request.GET)
        context = {
            **dashboard_context(now=timezone.now(), days=chart_range.chosen()),
            "range_form": chart_range,
            "can_export": self.can_export(request.user),
            "export_form": exports.ExportForm(),
            **(extra_context or {}),
        }
        response = super().index(request, context)
        if chart_range.errors or context["export_form"].errors:
            response.status_code = 400
        return response

    @staticmethod
    def can_export(user) -> bool:
        return user.has_perm(Permission.EXPORT_USAGE.full_name)

    def get_urls(self):
        export = self.admin_view(self.export)
        return [
            path("export/agent-usage.csv", export, {"kind": "agent"}, name="export_agent_usage"),
            path("export/model-usage.csv", export, {"kind": "model"}, name="export_model_usage"),
            path(
                "export/agent-model-usage.csv",
                export,
                {"kind": "agent_model"},
                name="export_agent_model_usage",
            ),
            *super().get_urls(),
        ]

    def export(self, request, kind):
        """The CSV; dates it cannot export show the dashboard again, the errors beside them."""
        if not self.can_export(request.user):
            raise PermissionDenied
        form = exports.ExportForm(request.GET)
        if not form.is_valid():
            return self.index(request, {"export_form": form})
        options = form.cleaned_data
        return exports.usage_csv(
            kind,
            first_day=options["first_day"],
            last_day=options["last_day"],
            per_day=options["per_day"],
        )
