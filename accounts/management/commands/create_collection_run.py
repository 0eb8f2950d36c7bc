import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts import collections
from accounts.collection_models import CollectionRun
from accounts.exceptions import AccountException, InvalidArgument
from accounts.fields import window_bound
from accounts.management.collectionutils import (
    aware,
    describe,
    month,
    parse_date,
    parse_moment,
    usage_error,
)
from accounts.models import AccountType


class Command(BaseCommand):
    help = (
        "Create the collection run of a period: what the accounts of a scope (an account "
        "type, or every account) owe at the freeze is collected on the collection date, one "
        "run per currency. Idempotent: a run that exists is reported, not created again. "
        "-v 0: errors only. Exit status: 0 done, 1 refused (a run for the period exists "
        "with other dates), 2 usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        period = parser.add_mutually_exclusive_group(required=True)
        period.add_argument(
            "--period",
            metavar="YYYY-MM",
            help="A calendar month in the current time zone, or last-month (for cron).",
        )
        period.add_argument(
            "--start", metavar="DATE", help="First day of the period (with --end)."
        )
        parser.add_argument("--end", metavar="DATE", help="Last day of the period (with --start).")
        parser.add_argument(
            "--type",
            metavar="CODE",
            help="Code of the account type to collect (its subtypes too); default: every "
            "account but the core ones.",
        )
        parser.add_argument(
            "--currency",
            action="append",
            metavar="CODE",
            help="Create the run of this currency only (repeat for several); default: one run "
            "per currency of the scope's accounts.",
        )
        parser.add_argument(
            "--freeze-at",
            metavar="DATETIME",
            help="When the amounts owed are taken; default: the end of the period.",
        )
        collect = parser.add_mutually_exclusive_group()
        collect.add_argument("--collect-on", metavar="DATE", help="The day money is taken.")
        collect.add_argument(
            "--collect-after",
            metavar="DAYS",
            type=int,
            default=5,
            help="Or: that many days after the freeze's day (default %(default)s).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be created; write nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = self.period(options)
        freeze_at = (
            aware(parse_moment(options["freeze_at"], "--freeze-at"))
            if options["freeze_at"]
            else None
        )
        if options["collect_on"]:
            collect_on = parse_date(options["collect_on"], "--collect-on")
        else:
            if options["collect_after"] < 1:
                raise usage_error("--collect-after must be at least 1 (day).")
            freeze_day = timezone.localdate(freeze_at) if freeze_at else end
            collect_on = freeze_day + datetime.timedelta(days=options["collect_after"])
        account_type = None
        if options["type"]:
            account_type = AccountType.objects.filter(code=options["type"]).first()
            if account_type is None:
                raise usage_error("There is no account type with code %r." % options["type"])
        currencies = (
            options["currency"]
            or collections.scope_currencies(account_type=account_type)
            or [None]
        )
        verbose = options["verbosity"] >= 1
        refused = 0
        for currency in currencies:
            arguments: dict[str, Any] = {
                "account_type": account_type,
                "period_start": start,
                "period_end": end,
                "freeze_at": freeze_at,
                "collect_on": collect_on,
                "currency": currency,
            }
            try:
                if options["dry_run"]:
                    self.dry_run(arguments, verbose)
                    continue
                existed = self.existing(arguments)
                run = collections.create_run(**arguments)
            except InvalidArgument as exc:
                raise usage_error(str(exc)) from exc
            except AccountException as exc:
                refused += 1
                self.stderr.write("REFUSED: %s" % exc)
                continue
            if verbose:
                self.stdout.write(
                    "%s %s" % ("Exists, unchanged:" if existed else "Created", describe(run))
                )
        if refused:
            raise CommandError("%d run(s) refused; nothing written for them." % refused)

    def period(self, options: dict[str, Any]) -> tuple[datetime.date, datetime.date]:
        if options["period"]:
            if options["end"]:
                raise usage_error("--end goes with --start, not with --period.")
            return month(options["period"])
        if not options["end"]:
            raise usage_error("--start needs --end.")
        return (
            parse_date(options["start"], "--start"),
            parse_date(options["end"], "--end"),
        )

    def existing(self, arguments: dict[str, Any]) -> bool:
        """Whether the run is there already (for the message; create_run decides)."""
        scope = collections.scope_key(account_type=arguments["account_type"])
        return CollectionRun.objects.filter(
            scope=scope,
            period_start=window_bound(arguments["period_start"], end=False),
            period_end=window_bound(arguments["period_end"], end=True),
            **({"currency": arguments["currency"]} if arguments["currency"] else {}),
        ).exists()

    def dry_run(self, arguments: dict[str, Any], verbose: bool) -> None:
        """Check the arguments as create_run would, in a transaction rolled back."""
        existed = self.existing(arguments)
        with transaction.atomic():
            run = collections.create_run(**arguments)
            line = describe(run, reference=existed)
            transaction.set_rollback(True)
        if verbose:
            self.stdout.write(
                "%s %s (dry run: nothing written)"
                % ("Exists, unchanged:" if existed else "Would create", line)
            )
