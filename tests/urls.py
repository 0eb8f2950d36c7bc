from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("gift-cards/", include("accounts.urls")),
    path("shop/", include("sandbox.shop.urls")),
]
