from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    label = "accounts"
    verbose_name = _("Managed accounts")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, core_accounts

        checks.register()
        # Core accounts are (re)created after every migrate and after every
        # flush, which also sends post_migrate; creation is idempotent.
        post_migrate.connect(
            core_accounts.create_core_accounts,
            sender=self,
            dispatch_uid="accounts.create_core_accounts",
        )
