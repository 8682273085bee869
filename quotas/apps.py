from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class QuotasConfig(AppConfig):
    default = True
    name = "quotas"
    verbose_name = "Quotas"

    def ready(self):
        from django.db.models.signals import post_delete, post_save
        from simple_history.signals import (
            post_create_historical_record,
            pre_create_historical_record,
        )

        from quotas import changelog
        from quotas.api.auth import forget_keys
        from quotas.models import AgentAllowance, APIKey, ModelQuota, RepoLimit

        # A revoked, expired, re-roled or deleted key must not be taken from memory.
        post_save.connect(forget_keys, sender=APIKey, dispatch_uid="quotas-forget-keys-save")
        post_delete.connect(forget_keys, sender=APIKey, dispatch_uid="quotas-forget-keys-del")
        # Every change to a limit names who made it and goes to the change log.
        for limit in (AgentAllowance, ModelQuota, RepoLimit):
            history = limit.history.model
            uid = f"quotas-changelog-{limit._meta.model_name}"
            pre_create_historical_record.connect(changelog.name_actor, history, dispatch_uid=uid)
            post_create_historical_record.connect(
                changelog.log_limit_change, history, dispatch_uid=uid
            )


# Referenced through its module: a top-level AdminConfig here would count as a second
# default app config of this module.
class QuotasAdminConfig(admin_apps.AdminConfig):
    """The admin, with the quotas site (dashboard home page, exports) as admin.site."""

    default = False
    default_site = "quotas.admin_site.QuotasAdminSite"
