"""
What the serializers of the API's answers share: fields declared alike in
several of them (a model's choices, a related object by its reference,
metadata, the notification mark, the effective date) and lists of objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from django.db import models
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import ReturnList

from ...exceptions import StrOrPromise
from ..fields import (
    MetadataField,
    MomentField,
)

_T = TypeVar("_T")


def listed(
    serializer_class: type[serializers.Serializer[_T]],
    instances: Sequence[_T],
    context: dict[str, Any] | None = None,
) -> ReturnList[Any]:
    """``serializer_class(instances, many=True, context=context).data``.

    ``many_init`` is what ``many=True`` calls; DRF's stubs type a serializer's
    instance as one object, so the list goes through it by name.
    """
    data: ReturnList[Any] = serializer_class.many_init(instances, context=context or {}).data
    return data


class TextChoicesField(serializers.ChoiceField):
    """One of a model's ``TextChoices``, documented as an enum component of its own.

    A subclass names both: ``class PeriodField(TextChoicesField,
    component_name="Period")`` with ``text_choices = SpendingLimit.Period``.
    """

    text_choices: ClassVar[type[models.TextChoices]]

    def __init_subclass__(cls, *, component_name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        enum = {"type": "string", "enum": list(cls.text_choices.values)}
        extend_schema_field(enum, component_name=component_name)(cls)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=self.text_choices.choices, **kwargs)


def related(slug_field: str, help_text: StrOrPromise) -> serializers.SlugRelatedField[Any]:
    """A related object written as its ``slug_field`` (a reference, a username); null: none.

    Read only, so it needs no queryset; ``Any``: one helper serves relations
    to several models.
    """
    return serializers.SlugRelatedField(
        slug_field=slug_field, read_only=True, allow_null=True, help_text=help_text
    )


def read_only_metadata(help_text: StrOrPromise) -> MetadataField:
    """An object's metadata as the API answers it."""
    return MetadataField(read_only=True, help_text=help_text)


def notified_at_field(what: StrOrPromise) -> MomentField:
    """When the notification of a transfer or hold (``what``) was sent; null: not yet."""
    return MomentField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "When the notification of this %(what)s was sent (Transfer/Hold "
            "mark_notified()); null: not yet. Set once, never changed."
        )
        % {"what": what},
    )


EFFECTIVE_AT_HELP = _(
    "When the movement happened in the world (e.g. a card payment's transaction date), as "
    "the request gave it; default: when it was posted, never later."
)
