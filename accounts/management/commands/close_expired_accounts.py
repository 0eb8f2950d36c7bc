from django.core.management.base import BaseCommand, CommandError

from accounts import expiry
from accounts.management.commandutils import add_sweep_arguments, progress_printer, sweep_time
from accounts.models import Account


class Command(BaseCommand):
    help = (
        "Close accounts whose end date has passed, moving any money left on them to the "
        "expired account of their currency. Safe to run from cron while other copies run."
    )

    def add_arguments(self, parser):
        add_sweep_arguments(parser)

    def handle(self, *args, **options):
        now = sweep_time(options["as_of"])
        dry_run = options["dry_run"]
        result = expiry.close_expired_accounts(
            now=now,
            dry_run=dry_run,
            batch_size=options["batch_size"],
            progress=progress_printer(self, options),
        )
        out = self.stdout
        out.write(
            "%s %d expired account(s) as of %s%s."
            % (
                "Would close" if dry_run else "Closed",
                result.closed,
                now.isoformat(),
                " (dry run: nothing written)" if dry_run else "",
            )
        )
        for currency, amount in sorted(result.swept.items()):
            out.write(
                "  swept %s %s to %s"
                % (amount, currency, Account.objects.expired_account(currency))
            )
        if result.swept_accounts:
            out.write("  accounts swept: %d" % result.swept_accounts)
        if result.holds_expired:
            out.write("  holds lapsed with their accounts: %d" % result.holds_expired)
        if result.in_debt:
            out.write("Expired with outstanding debt (left open): %d" % len(result.in_debt))
            for account, balance in result.in_debt:
                out.write("  account %s (#%s): %s" % (account, account.pk, balance))
        if result.frozen:
            out.write("Skipped, frozen: %d" % len(result.frozen))
            if options["verbosity"] >= 2:
                for account in result.frozen:
                    out.write("  account %s (#%s)" % (account, account.pk))
        if result.skipped:
            out.write("Already handled by another run: %d" % result.skipped)
        for account, error in result.failures:
            self.stderr.write("FAILED account %s (#%s): %s" % (account, account.pk, error))
        if result.failures:
            raise CommandError("%d account(s) could not be closed." % len(result.failures))
