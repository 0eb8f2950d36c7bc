from django import template
from django.utils.translation import gettext as _

from accounts.codes import format_code

register = template.Library()


@register.filter
def account_label(account):
    """How a customer sees an account: its name, or a gift card by its code's last group."""
    if account.name:
        return account.name
    if account.code:
        return _("Gift card ending %(end)s") % {"end": format_code(account.code).rsplit("-")[-1]}
    return str(account)
