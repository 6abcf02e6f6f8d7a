"""A paced offline drafter for tests that must act while a run is in progress (cancel, disconnect, kill).

Selected through the SYNTHESIS_DRAFTER setting (or environment variable, for a worker subprocess). It
writes exactly what the default drafter writes, but sleeps SLOW_DRAFTER_DELAY seconds (default 0.4)
after every delta, asking should_stop() every 50 ms while it waits, as a model streaming tokens would.
"""

from __future__ import annotations

import os
import time

from canvas.runs.synthesis.drafters import DefaultDrafter, DraftStopped


class SlowDrafter(DefaultDrafter):
    name = "slow"

    def draft(self, request, *, emit, should_stop):
        delay = float(os.environ.get("SLOW_DRAFTER_DELAY", "0.4"))

        def paced(delta: str) -> None:
            emit(delta)
            until = time.monotonic() + delay
            while time.monotonic() < until:
                reason = should_stop()
                if reason:
                    raise DraftStopped(reason)
                time.sleep(0.05)

        return super().draft(request, emit=paced, should_stop=should_stop)
