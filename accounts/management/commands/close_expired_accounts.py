import datetime
from typing import Any

from django.core.management.base import CommandError

from accounts import expiry
from accounts.expiry import Expiry
from accounts.management.commandutils import (
    Output,
    SweepCommand,
    run_sweep,
)
from accounts.models import Account


class Command(SweepCommand):
    help = (
        "Close accounts whose end date has passed, moving any money left on them to the "
        "expired account of their currency. Safe to run from cron while other copies run. "
        "-v 0: errors only; -v 2: each account. Exit status: 0 done, 1 some account "
        "failed, 2 usage error."
    )

    def sweep(self, now: datetime.datetime, out: Output, options: dict[str, Any]) -> None:
        dry_run = out.dry_run
        sinks: dict[str, Account | str] = {}

        def sink(currency: str) -> Account | str:
            # Read, never created: a dry run writes nothing, not even a core account.
            if currency not in sinks:
                sinks[currency] = (
                    Account.objects.filter(role=Account.Role.EXPIRED, currency=currency).first()
                    or "the expired account (%s)" % currency
                )
            return sinks[currency]

        def report(account: Account, outcome: Expiry) -> None:
            name = "account %s (#%s)" % (account, account.pk)
            if outcome.outcome == "swept":
                out.item(
                    "  %s %s %s from %s to %s, %s"
                    % (
                        "would sweep" if dry_run else "swept",
                        outcome.amount.amount,
                        outcome.amount.currency.code,
                        name,
                        sink(outcome.amount.currency.code),
                        "and close it" if dry_run else "closed",
                    )
                )
            elif outcome.outcome == "closed":
                out.item(
                    "  %s %s (nothing on it)" % ("would close" if dry_run else "closed", name)
                )
            elif outcome.outcome == "skipped":
                out.item("  %s: already handled by another run" % name)

        result = run_sweep(expiry.close_expired_accounts, self, options, now, report)
        out.total("Closed", "Would close", result.closed, "expired account(s)", now)
        for currency, amount in sorted(result.swept.items()):
            out.summary(
                "  %s %s %s to %s"
                % ("would sweep" if dry_run else "swept", amount, currency, sink(currency))
            )
        if result.swept_accounts:
            out.summary(
                "  accounts %s: %d"
                % ("that would be swept" if dry_run else "swept", result.swept_accounts)
            )
        if result.holds_expired:
            out.summary("  holds lapsed with their accounts: %d" % result.holds_expired)
        if result.in_debt:
            out.summary("Expired with outstanding debt (left open): %d" % len(result.in_debt))
            for account, balance in result.in_debt:
                out.summary("  account %s (#%s): %s" % (account, account.pk, balance))
        if result.frozen:
            out.summary("Skipped, frozen: %d" % len(result.frozen))
            for account in result.frozen:
                out.item("  account %s (#%s)" % (account, account.pk))
        if result.skipped:
            out.summary("Already handled by another run: %d" % result.skipped)
        for account, error in result.failures:
            out.error("FAILED account %s (#%s): %s" % (account, account.pk, error))
        if result.failures:
            raise CommandError("%d account(s) could not be closed." % len(result.failures))
