"""
The financial reports: the ``accounts.view_reports`` permission, and the
"Reports" entry of the admin (a proxy of ``Account`` with no table and no
permissions of its own; see ``accounts.admin_reports``).

No index is added: the reports read balances at a moment through the legs'
(account, created, id) index and the period's transfers through
``Transfer.created``, both already there (100,000 accounts and a million
legs answer in well under two seconds on PostgreSQL; see README,
Performance).
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_batches"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="account",
            options={
                "ordering": ["pk"],
                "permissions": [
                    (
                        "move_money",
                        "Can move money: top up, withdraw, transfer, reverse and release holds",
                    ),
                    (
                        "view_reports",
                        "Can view the financial reports and export them and the ledger",
                    ),
                ],
                "verbose_name": "account",
                "verbose_name_plural": "accounts",
            },
        ),
        migrations.CreateModel(
            name="Report",
            fields=[],
            options={
                "verbose_name": "report",
                "verbose_name_plural": "reports",
                "proxy": True,
                "default_permissions": (),
                "indexes": [],
                "constraints": [],
            },
            bases=("accounts.account",),
        ),
    ]
