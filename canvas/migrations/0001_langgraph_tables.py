"""Create LangGraph's Store and checkpoint tables in the Store's database (idempotent): the one
LANGGRAPH_DATABASE_URL names, else the database being migrated. canvas.apps runs the same setup after
every `migrate`, so later versions of the tables arrive too."""

from django.db import migrations


def create_langgraph_tables(apps, schema_editor):
    # lazy: migrations are imported by `migrate` itself; the Store module is needed only when this one runs
    from canvas_project.store import setup_langgraph_tables

    setup_langgraph_tables(schema_editor.connection.settings_dict)


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []
    operations = [migrations.RunPython(create_langgraph_tables, migrations.RunPython.noop, elidable=False)]
