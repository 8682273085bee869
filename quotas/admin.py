from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from quotas.models import APIKey

# The library's own key model is unused here: our keys carry a role and their last use.
admin.site.unregister(LibraryAPIKey)


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "role", "last_used_at"]
    list_filter = [*APIKeyModelAdmin.list_filter, "role"]
