import datetime
from typing import Any

from django.core.management.base import CommandError

from accounts import expiry
from accounts.management.commandutils import (
    Output,
    SweepCommand,
    run_sweep,
)
from accounts.models import Hold


class Command(SweepCommand):
    help = (
        "Mark active holds past their expiry as expired, freeing the money they reserved. "
        "Safe to run from cron while other copies run. -v 0: errors only; -v 2: each hold. "
        "Exit status: 0 done, 1 some hold failed, 2 usage error."
    )

    def sweep(self, now: datetime.datetime, out: Output, options: dict[str, Any]) -> None:
        dry_run = out.dry_run

        def report(hold: Hold, expired: bool) -> None:
            if expired:
                out.item(
                    "  %s hold %s on account #%s: %s %s %s"
                    % (
                        "would expire" if dry_run else "expired",
                        hold.reference,
                        hold.source_id,
                        "would free" if dry_run else "freed",
                        hold.amount.amount,
                        hold.currency,
                    )
                )
            else:
                out.item("  hold %s: already resolved by another process" % hold.reference)

        result = run_sweep(expiry.release_expired_holds, self, options, now, report)
        out.total("Expired", "Would expire", result.expired, "hold(s)", now)
        for currency, amount in sorted(result.freed.items()):
            out.summary("  %s %s %s" % ("would free" if dry_run else "freed", amount, currency))
        if result.skipped:
            out.summary("  %d already resolved by another process" % result.skipped)
        for hold, error in result.failures:
            out.error("  FAILED hold %s: %s" % (hold.pk, error))
        if result.failures:
            raise CommandError("%d hold(s) could not be expired." % len(result.failures))
