from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _langgraph_tables_after_migrate(sender, using, plan=None, **kwargs) -> None:
    """After every `migrate`: create or update LangGraph's tables in the Store's database. The canvas
    migration 0001 does it once, on a fresh install; this brings in the table migrations of a newer
    langgraph-checkpoint-postgres and a Store moved to another database (LANGGRAPH_DATABASE_URL).
    `flush` (e.g. between transactional tests) also sends post_migrate, without a plan: skipped."""
    if plan is None:
        return
    # lazy: an app module is imported while Django is still loading apps; the Store's module reads settings
    from django.db import connections

    from canvas_project.store import setup_langgraph_tables

    setup_langgraph_tables(connections[using].settings_dict)


class CanvasConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "canvas"
    verbose_name = "Canvas"

    def ready(self) -> None:
        post_migrate.connect(
            _langgraph_tables_after_migrate, sender=self, dispatch_uid="canvas.langgraph_tables_after_migrate"
        )
