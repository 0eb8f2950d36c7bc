"""
Optional public URLs: ``path("gift-cards/", include("accounts.urls"))``.

``accounts:balance_check`` is the gift card balance page (``balance/``).
"""

from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("balance/", views.balance_check, name="balance_check"),
]
