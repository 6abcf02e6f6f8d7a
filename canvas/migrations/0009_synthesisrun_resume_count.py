from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("canvas", "0008_synthesisrun_webhook"),
    ]

    operations = [
        migrations.AddField(
            model_name="synthesisrun",
            name="resume_count",
            field=models.PositiveIntegerField(
                default=0,
                help_text="How many times the run was resumed from its last checkpoint after its worker died "
                "(at most RUN_MAX_RESUMES); also the fencing token of the worker executing it.",
            ),
        ),
        migrations.AddField(
            model_name="synthesisrun",
            name="requeued_at",
            field=models.DateTimeField(
                blank=True,
                null=True,
                help_text="When the dead-run sweeper last put the run back in the queue after its worker died (tells "
                "that resume from an answer to the run's question, which also queues it again).",
            ),
        ),
    ]
