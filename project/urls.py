from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from quotas.admin.people import SetPasswordView


def favicon(request):
    """Browsers ask for /favicon.ico whatever a page links to: the SVG the admin uses."""
    return redirect(static("quotas/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    # Before the admin's own URLs, whose catch-all would answer first.
    path(
        "admin/set-password/<uidb64>/<token>/",
        SetPasswordView.as_view(),
        name="set_password",
    ),
    path("admin/", admin.site.urls),
    path("", include("quotas.api.urls")),
]

handler404 = "quotas.api.errors.not_found"
handler500 = "quotas.api.errors.server_error"
