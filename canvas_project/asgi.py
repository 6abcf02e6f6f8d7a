"""ASGI entry point: `uvicorn canvas_project.asgi:application` (SSE streams need ASGI).

Django's handler, except that an open event stream holds no thread (canvas_project.sse.handler).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")
django.setup(set_prefix=False)

from canvas_project import heap  # noqa: E402 - needs the settings configured
from canvas_project.sse.handler import StreamingASGIHandler  # noqa: E402 - needs the settings configured

application = StreamingASGIHandler()
heap.settle()  # what is loaded now is never walked by the garbage collector again (canvas_project.heap)
