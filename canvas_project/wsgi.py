"""WSGI entry point: `gunicorn canvas_project.wsgi` for plain REST where the benchmark says so."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")

application = get_wsgi_application()

from canvas_project import heap  # noqa: E402 - needs the settings configured

heap.settle()  # what is loaded now is never walked by the garbage collector again (canvas_project.heap)
