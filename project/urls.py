from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("quotas.api.urls")),
]

handler404 = "quotas.api.errors.not_found"
handler500 = "quotas.api.errors.server_error"
