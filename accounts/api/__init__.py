"""
A REST API on Django REST framework, with an OpenAPI schema (drf-spectacular).

Optional: ``pip install django-managed-accounts[api]`` brings its
dependencies, and ``path("api/accounts/", include("accounts.api.urls"))``
mounts it. Nothing else in the package imports it.

Modules: ``views`` and ``urls`` (the endpoints), ``serializers`` and
``fields`` (JSON in and out, strictly typed), ``permissions`` (who sees and
moves what), ``policy`` (which accounts a customer may pay), ``errors``
(machine codes and statuses per exception class), ``pagination`` (cursor
pages), ``schema`` (OpenAPI documentation of errors and headers).
"""
