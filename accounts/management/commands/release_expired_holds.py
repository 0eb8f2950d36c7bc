from django.core.management.base import BaseCommand, CommandError

from accounts import expiry
from accounts.management.commandutils import add_sweep_arguments, progress_printer, sweep_time


class Command(BaseCommand):
    help = (
        "Mark active holds past their expiry as expired, freeing the money they reserved. "
        "Safe to run from cron while other copies run."
    )

    def add_arguments(self, parser):
        add_sweep_arguments(parser)

    def handle(self, *args, **options):
        now = sweep_time(options["as_of"])
        result = expiry.release_expired_holds(
            now=now,
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            progress=progress_printer(self, options),
        )
        verb = "Would expire" if options["dry_run"] else "Expired"
        self.stdout.write("%s %d hold(s) as of %s." % (verb, result.expired, now.isoformat()))
        for currency, amount in sorted(result.freed.items()):
            self.stdout.write("  freed %s %s" % (amount, currency))
        if result.skipped:
            self.stdout.write("  %d already resolved by another process" % result.skipped)
        for hold, error in result.failures:
            self.stderr.write("  FAILED hold %s: %s" % (hold.pk, error))
        if result.failures:
            raise CommandError("%d hold(s) could not be expired." % len(result.failures))
