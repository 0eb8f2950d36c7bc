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
        for name in extracted or ():
            app_label, codename = name.split(".")
            self.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
