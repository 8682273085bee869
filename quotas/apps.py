from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class QuotasConfig(AppConfig):
    default = True
    name = "quotas"
    verbose_name = "Quotas"
    default_auto_field = "django.db.models.BigAutoField"


# Referenced through its module: a top-level AdminConfig here would count as a second
# default app config of this module.
class QuotasAdminConfig(admin_apps.AdminConfig):
    """The admin, with the quotas site (dashboard home page, exports) as admin.site."""

    default = False
    default_site = "quotas.admin_site.QuotasAdminSite"
