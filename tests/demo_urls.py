"""The library's test URLs (tests/urls.py) and the demo shop, for tests/demo_settings.py."""

from django.urls import include, path

from tests.urls import urlpatterns as library_urlpatterns

urlpatterns = [*library_urlpatterns, path("shop/", include("sandbox.shop.urls"))]
