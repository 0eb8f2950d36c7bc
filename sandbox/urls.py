from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("sandbox.shop.urls")),
    # The package's public gift card balance check (accounts.urls is optional).
    path("gift-cards/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]
