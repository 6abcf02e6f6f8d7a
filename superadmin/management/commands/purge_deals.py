"""manage.py purge_deals: purge per-deal Redis state from a shell (the same service as the API)."""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from canvas_project.errors import DomainError, InvalidInputError
from canvas_project.keyspace import WalkProgress
from superadmin import services
from superadmin.models import PurgeSource

_OPTION_OF_LOC = {
    "deal_id": "--deal",
    "org_id": "--org",
    "exclude_active_within_secs": "--exclude-active-within",
    "mode": "--all/--deal",
}


class _ProgressLine:
    """A progress bar on a terminal, a line every few seconds otherwise; on the command's stderr."""

    WIDTH = 30
    EVERY_SECONDS = 5.0

    def __init__(self, stream, *, dry_run: bool) -> None:
        self.stream = stream  # Django's OutputWrapper: write(text, ending="")
        self.tty = stream.isatty()
        self.dry_run = dry_run
        self.last = 0.0
        self.drawn = False
        self.pending: WalkProgress | None = None
        self.latest: WalkProgress | None = None
        self.summary: str | None = None  # set once the purge returned: the last line then says 100% and this

    def __call__(self, step: WalkProgress) -> None:
        self.latest = step
        now = time.monotonic()
        if now - self.last < (0.1 if self.tty else self.EVERY_SECONDS):
            self.pending = step
            return
        self.last, self.pending = now, None
        self._draw(step)

    def _draw(self, step: WalkProgress | None) -> None:
        if self.summary is not None:  # SCAN's progress is only an estimate (matched keys of DBSIZE); done is done
            share = 1.0
            text = f"done: {self.summary}"
        else:
            so_far = services.purge_wording(dry_run=self.dry_run, keys=step.matched, deals=step.deals) + " so far"
            if step.stage == "known":
                share = step.deals_done / step.deals_total if step.deals_total else 0.0
                text = f"known deals {step.deals_done:,} of {step.deals_total:,}: {so_far}"
            else:
                share = min(step.scanned / step.keyspace, 1.0) if step.keyspace else 0.0
                scanned = f"scanned {step.scanned:,} of ~{step.keyspace:,} keys"
                # A cluster's primaries are swept at once: the figures are their sums.
                nodes = (
                    f"node {step.node}/{step.nodes}"
                    if step.nodes == 1
                    else f"{step.nodes_done}/{step.nodes} nodes done"
                )
                text = f"sweep: {nodes} {scanned}: {so_far}"
        if self.tty:
            filled = int(share * self.WIDTH)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} {text}\033[K",
                ending="",
                style_func=str,
            )
            self.drawn = True
        else:
            self.stream.write(f"{share:4.0%} {text}", style_func=str)
        self.stream.flush()

    def close(self, *, summary: str | None = None) -> None:
        """The last line: the purge's summary once it returned (`summary`), else the last state not yet drawn."""
        self.summary = summary
        if summary is not None:
            self._draw(None)
        elif self.pending is not None:
            self._draw(self.pending)
        if self.drawn:
            self.stream.write("")


class Command(BaseCommand):
    help = (
        "Purge per-deal Redis state (and, with --include-checkpoints, run streams and LangGraph checkpoint "
        "threads). Prints one summary line; --json prints the whole result. Exits non-zero on failure."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--all", action="store_true", help="Every deal in Redis (SCAN + UNLINK in batches).")
        target.add_argument("--deal", metavar="DEAL_ID", help="One deal, without scanning the keyspace.")
        parser.add_argument(
            "--org",
            metavar="ORG_ID",
            help="With --all: only this org's deals. With --deal: must be the deal's org.",
        )
        parser.add_argument(
            "--include-checkpoints",
            action="store_true",
            help="Also run streams, cancel flags, traces and the LangGraph checkpoint threads.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="With --include-checkpoints: even while a run of the deal is active.",
        )
        parser.add_argument(
            "--exclude-active-within",
            type=int,
            metavar="SECS",
            help="Skip deals whose canvas events have an entry newer than SECS seconds.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be purged; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON on stdout.")
        parser.add_argument("--yes", action="store_true", help="Do not ask before a destructive purge of all deals.")

    def handle(self, *args, **options):
        mode = services.MODE_ALL if options["all"] else services.MODE_BY_DEAL
        dry_run = options["dry_run"]
        if mode == services.MODE_ALL and not dry_run and not options["yes"]:
            self._confirm(options)
        progress = _ProgressLine(self.stderr, dry_run=dry_run) if mode == services.MODE_ALL else None
        try:
            result = services.deals_purge(
                mode=mode,
                deal_id=options["deal"],
                org_id=options["org"],
                include_checkpoints=options["include_checkpoints"],
                exclude_active_within_secs=options["exclude_active_within"],
                dry_run=dry_run,
                force=options["force"],
                source=PurgeSource.COMMAND,
                progress=progress,
            )
            if progress is not None:
                progress.close(summary=result.summary)
                progress = None
        except InvalidInputError as exc:
            option = _OPTION_OF_LOC.get(str(exc.loc[-1]), str(exc.loc[-1]))
            raise CommandError(f"{option}: {exc.message}") from None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except Exception as exc:  # Redis or PostgreSQL down: one line, non-zero exit, no traceback
            raise CommandError(f"purge failed: {services.failure_text(exc)}") from None
        finally:
            if progress is not None:
                progress.close()
        if options["json"]:
            # stdout stays pure JSON for scripts; the summary line goes to stderr.
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            self.stderr.write(self._summary(result), style_func=str)
        else:
            self.stdout.write(self._summary(result))

    def _confirm(self, options) -> None:
        scope = f"every deal of org {options['org']}" if options["org"] else "EVERY deal"
        what = "Redis state, run streams and checkpoint threads" if options["include_checkpoints"] else "Redis state"
        if not sys.stdin.isatty():
            raise CommandError(
                f"refusing to purge the {what} of {scope} without confirmation: stdin is not a "
                "terminal; pass --yes (or --dry-run first)."
            )
        # The question goes to stderr so that stdout stays the result (--json) alone.
        self.stderr.write(
            f"Purge the {what} of {scope}? This cannot be undone (it is rebuilt on demand). Type 'yes' to continue: ",
            ending="",
            style_func=str,
        )
        self.stderr.flush()
        answer = sys.stdin.readline()
        if answer.strip().lower() != "yes":
            raise CommandError("aborted: nothing was purged.")

    @staticmethod
    def _summary(result: services.PurgeResult) -> str:
        families = ", ".join(f"{name} {count}" for name, count in result.keys_by_family.items() if count) or "none"
        return f"{result.summary} in {result.duration_ms} ms ({families}); audit {result.audit_id}"
