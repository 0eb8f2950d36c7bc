"""factory-boy factories for the test suite."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from accounts import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: "user%d" % n)
    email = factory.LazyAttribute(lambda u: "%s@example.com" % u.username)


class AccountTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.AccountType

    name = factory.Sequence(lambda n: "Type %d" % n)
    code = factory.Sequence(lambda n: "type-%d" % n)


class AccountFactory(factory.django.DjangoModelFactory):
    """An open account in the default currency with no credit."""

    class Meta:
        model = models.Account

    name = factory.Sequence(lambda n: "Account %d" % n)


class StaffFactory(UserFactory):
    """A staff user who logs in with the password "staff".

    ``StaffFactory(permissions=["accounts.move_money"])`` grants permissions
    by their ``app_label.codename``.
    """

    class Meta:
        skip_postgeneration_save = True

    is_staff = True
    password = factory.django.Password("staff")

    @factory.post_generation
    def permissions(self, create, extracted, **kwargs):
        if not extracted:
            return
        wanted = {tuple(name.split(".")) for name in extracted}
        # One query and one add for them all (most staff users get two or three).
        found = {
            (permission.content_type.app_label, permission.codename): permission
            for permission in Permission.objects.select_related("content_type").filter(
                codename__in={codename for _app_label, codename in wanted}
            )
        }
        missing = sorted(".".join(name) for name in wanted - set(found))
        if missing:
            raise Permission.DoesNotExist("No such permission: %s" % ", ".join(missing))
        self.user_permissions.add(*(found[name] for name in wanted))
