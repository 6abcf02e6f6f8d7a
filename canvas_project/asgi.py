"""ASGI entry point: `uvicorn canvas_project.asgi:application` (SSE streams need ASGI)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")

application = get_asgi_application()
