import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "accounts" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="django-managed-accounts",
    version=VERSION,
    description=(
        "Managed accounts for Django: gift cards, store credit, wallets and budgets on a "
        "double-entry ledger that stays correct under concurrency."
    ),
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["accounts", "accounts.*"]),
    include_package_data=True,
    package_data={"accounts": ["py.typed"]},
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=[
        "Django>=5.2,<6.2",
        "django-money>=3.5,<4",
        "python-dateutil>=2.8",
    ],
    extras_require={
        # The REST API (accounts.api): pip install django-managed-accounts[api]
        "api": ["djangorestframework>=3.16", "drf-spectacular>=0.28"],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Office/Business :: Financial :: Accounting",
        "Typing :: Typed",
    ],
)
