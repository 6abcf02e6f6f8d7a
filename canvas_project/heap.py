"""What a web process does once its application is loaded, before it serves: settle the heap.

Python's cyclic garbage collector walks every tracked object in a full (generation 2) collection. A loaded
worker tracks hundreds of thousands of objects that live as long as the process (Django, DRF, LangGraph, the
URL patterns and views: about 220,000 after start-up), so each full collection stopped the event loop for
170-310 ms (measured with gc callbacks during bench/events, 1,000 subscribers at 100 events/s: ten of them in
30 s). Every stream delivery waiting behind one waits that long: they were the whole latency tail.

`settle()` imports what the first requests would import (the URL configuration, hence every view and what it
imports), collects once, then freezes what is left (`gc.freeze()`): those objects move to a permanent
generation that later collections skip. What the process allocates afterwards (requests, streams) is
collected as before. The cost is that garbage cycles among the frozen objects are never freed, which for
objects created while loading is nothing worth having. GC_FREEZE_AFTER_LOAD=false turns it off.

What a serving process allocates later still reaches the oldest generation: with 1,000 open streams about
125,000 objects, whose full collection took about 100 ms, triggered every few seconds by the default
allocation threshold (700 young objects per collection). GC_GEN0_THRESHOLD (default 50,000) makes every
collection, and so every full one, about 70 times rarer, for a few MB of young garbage held longer.
"""

from __future__ import annotations

import gc

from django.conf import settings
from django.urls import get_resolver


def settle() -> None:
    if not settings.GC_FREEZE_AFTER_LOAD:
        return
    get_resolver().url_patterns  # noqa: B018 - imports the URLconf now, not at the first request
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.GC_GEN0_THRESHOLD, older, oldest)
