"""API keys: created with the key shown once, revoked with one button."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseNotFound, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from quotas import display
from quotas.models import APIKey

# The library's own key model is unused here: our keys carry a role and their last use.
admin.site.unregister(LibraryAPIKey)


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    list_display = [
        "name",
        "prefix",
        "created",
        "expiry_date",
        "expired",
        "role",
        "last_used_at",
        "revoke_button",
    ]
    list_filter = [*APIKeyModelAdmin.list_filter, "role"]

    def get_urls(self):
        revoke = self.admin_site.admin_view(self.revoke_view)
        return [
            path("<path:object_id>/revoke/", revoke, name="quotas_apikey_revoke"),
            *super().get_urls(),
        ]

    @admin.display(description="expired")
    def expired(self, obj):
        return display.yes_no(obj.has_expired)

    @admin.display(description="revoke")
    def revoke_button(self, obj):
        if obj.revoked:
            return "revoked"
        # The change list is one big form already (it carries the CSRF token); this button
        # posts it to the revoke URL instead: one click, no JavaScript, no nested form.
        return format_html(
            '<button type="submit" class="button" formaction="{}" formmethod="post" '
            "formnovalidate>Revoke</button>",
            reverse("admin:quotas_apikey_revoke", args=[obj.pk]),
        )

    def revoke_view(self, request, object_id):
        api_key = self.get_object(request, object_id)
        if request.method != "POST" or api_key is None:
            return HttpResponseNotAllowed(["POST"]) if api_key else HttpResponseNotFound()
        if not self.has_change_permission(request, api_key):
            raise PermissionDenied
        if not api_key.revoked:
            api_key.revoked = True
            api_key.save(update_fields=["revoked"])
            self.message_user(request, f"Revoked the key '{api_key.name}' ({api_key.prefix}).")
        return HttpResponseRedirect(reverse("admin:quotas_apikey_changelist"))
