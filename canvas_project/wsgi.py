"""WSGI entry point: `gunicorn canvas_project.wsgi` for plain REST where the benchmark says so."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")

application = get_wsgi_application()
