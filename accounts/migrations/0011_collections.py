"""
Collecting debts (``accounts.collections``): collection runs, their debts and
the settlements linking each debt to the transfers that recovered it.

The external references of settlements (and the scope and reference of
runs) are ``ExactCharField``: on MariaDB/MySQL they get the binary, no-pad
collation, so two references that differ only in case or a trailing space
are two payments. A run's source account has no foreign key constraint in
the database (see ``CollectionRun.source``).
"""

import accounts.fields
import accounts.models
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0010_spending_limits_and_repayments'),
    ]

    operations = [
        migrations.CreateModel(
            name='CollectionRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reference', accounts.fields.ExactCharField(default=accounts.models.generate_reference, editable=False, max_length=32, unique=True, verbose_name='reference')),
                ('scope', accounts.fields.ExactCharField(help_text='What the run covers: type:<id> (an account type and its subtypes), all (every account but the core ones) or accounts:<name> (the accounts given).', max_length=160, verbose_name='scope')),
                ('currency', models.CharField(max_length=3, verbose_name='currency')),
                ('period_start', models.DateTimeField(verbose_name='period start')),
                ('period_end', models.DateTimeField(verbose_name='period end')),
                ('freeze_at', models.DateTimeField(help_text='What each account owes is its debt at this moment.', verbose_name='freeze at')),
                ('collect_on', models.DateField(help_text='The day the money is to be taken (direct debit, charge).', verbose_name='collect on')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='pending', max_length=16, verbose_name='status')),
                ('request_fingerprint', models.CharField(editable=False, max_length=64, verbose_name='request fingerprint')),
                ('frozen_through', models.BigIntegerField(blank=True, editable=False, help_text='While freezing: the accounts up to this id have been looked at.', null=True, verbose_name='frozen through account')),
                ('frozen_at', models.DateTimeField(blank=True, null=True, verbose_name='frozen at')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                ('debt_count', models.PositiveIntegerField(default=0, verbose_name='debts')),
                ('total_owed', accounts.fields.LedgerMoneyField(decimal_places=4, default=accounts.fields.zero, max_digits=19, verbose_name='to recover')),
                ('total_initiated', accounts.fields.LedgerMoneyField(decimal_places=4, default=accounts.fields.zero, help_text='Still owed by the debts being collected (initiated).', max_digits=19, verbose_name='initiated')),
                ('total_recovered', accounts.fields.LedgerMoneyField(decimal_places=4, default=accounts.fields.zero, max_digits=19, verbose_name='recovered')),
                ('total_failed', accounts.fields.LedgerMoneyField(decimal_places=4, default=accounts.fields.zero, help_text='Not recovered by the debts that failed.', max_digits=19, verbose_name='failed')),
                ('created', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created')),
                ('account_type', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.accounttype', verbose_name='account type')),
                ('members', models.ManyToManyField(blank=True, help_text='For a run over the accounts a caller gave: those accounts.', related_name='+', to='accounts.account', verbose_name='accounts given')),
                ('source', models.ForeignKey(db_constraint=False, help_text="The account recovered money is moved from, into each debtor's account.", on_delete=django.db.models.deletion.PROTECT, related_name='+', to='accounts.account', verbose_name='collected from')),
            ],
            options={
                'verbose_name': 'collection run',
                'verbose_name_plural': 'collection runs',
                'ordering': ['-period_end', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='Debt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('currency', models.CharField(max_length=3, verbose_name='currency')),
                ('amount', accounts.fields.LedgerMoneyField(decimal_places=4, help_text="The account's debt at the run's freeze moment, less what other runs were collecting or recovered since.", max_digits=19, verbose_name='amount owed')),
                ('balance_at_freeze', accounts.fields.LedgerMoneyField(decimal_places=4, max_digits=19, verbose_name='balance at the freeze')),
                ('claimed_elsewhere', accounts.fields.LedgerMoneyField(decimal_places=4, default=accounts.fields.zero, help_text="Part of the debt at the freeze that other runs' debts were collecting, or recovered after it: not owed again here.", max_digits=19, verbose_name='collected by other runs')),
                ('recovered', accounts.fields.LedgerMoneyField(decimal_places=4, default=accounts.fields.zero, max_digits=19, verbose_name='recovered')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('initiated', 'Initiated'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='pending', max_length=16, verbose_name='status')),
                ('external_reference', accounts.fields.ExactCharField(blank=True, help_text='The reference of the last money that came back for it.', max_length=100, verbose_name='external reference')),
                ('failure_reason', models.TextField(blank=True, verbose_name='failure reason')),
                ('created', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created')),
                ('initiated_at', models.DateTimeField(blank=True, null=True, verbose_name='initiated at')),
                ('resolved_at', models.DateTimeField(blank=True, null=True, verbose_name='resolved at')),
                ('resolved_by', models.CharField(blank=True, help_text='Username of who recorded the last settlement or the failure.', max_length=150, verbose_name='resolved by')),
                ('account', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='debts', to='accounts.account', verbose_name='account')),
                ('run', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='debts', to='accounts.collectionrun', verbose_name='collection run')),
            ],
            options={
                'verbose_name': 'debt',
                'verbose_name_plural': 'debts',
                'ordering': ['run_id', 'id'],
            },
        ),
        migrations.CreateModel(
            name='Settlement',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reference', accounts.fields.ExactCharField(help_text="The payment provider's reference of the money that came back: recording it again with the same reference records nothing more.", max_length=100, unique=True, verbose_name='external reference')),
                ('request_fingerprint', models.CharField(editable=False, max_length=64, verbose_name='request fingerprint')),
                ('created', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created')),
                ('debt', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='settlements', to='accounts.debt', verbose_name='debt')),
                ('transfer', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='settlement', to='accounts.transfer', verbose_name='transfer')),
            ],
            options={
                'verbose_name': 'settlement',
                'verbose_name_plural': 'settlements',
                'ordering': ['debt_id', 'id'],
            },
        ),
        migrations.AddField(
            model_name='debt',
            name='transfers',
            field=models.ManyToManyField(blank=True, related_name='settled_debts', through='accounts.Settlement', to='accounts.transfer', verbose_name='recovery transfers'),
        ),
        migrations.AddIndex(
            model_name='collectionrun',
            index=models.Index(fields=['status', 'freeze_at'], name='accounts_run_due'),
        ),
        migrations.AddConstraint(
            model_name='collectionrun',
            constraint=models.UniqueConstraint(fields=('scope', 'currency', 'period_start', 'period_end'), name='accounts_one_run_per_scope_and_period'),
        ),
        migrations.AddIndex(
            model_name='debt',
            index=models.Index(fields=['run', 'status', 'id'], name='accounts_debt_run_status'),
        ),
        migrations.AddIndex(
            model_name='debt',
            index=models.Index(fields=['account', 'status'], name='accounts_debt_account_status'),
        ),
        migrations.AddConstraint(
            model_name='debt',
            constraint=models.UniqueConstraint(fields=('run', 'account'), name='accounts_one_debt_per_run_and_account'),
        ),
        migrations.AddConstraint(
            model_name='debt',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='accounts_debt_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='debt',
            constraint=models.CheckConstraint(condition=models.Q(('recovered__gte', 0), ('recovered__lte', models.F('amount'))), name='accounts_debt_recovered_within_amount'),
        ),
    ]
