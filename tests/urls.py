from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("gift-cards/", include("accounts.urls")),
]

if settings.API_INSTALLED:
    urlpatterns.append(path("api/accounts/", include("accounts.api.urls")))
