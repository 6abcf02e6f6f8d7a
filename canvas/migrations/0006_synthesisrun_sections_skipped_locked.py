from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("canvas", "0005_synthesisrun_trace_cancel_drafter"),
    ]

    operations = [
        migrations.AddField(
            model_name="synthesisrun",
            name="sections_skipped_locked",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Sections left as they were because someone held their lock (collaboration off): "
                "[{section_key, holder, holder_id, expires_at}].",
            ),
        ),
    ]
