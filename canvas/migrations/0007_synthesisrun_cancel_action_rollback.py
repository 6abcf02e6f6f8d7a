from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("canvas", "0006_synthesisrun_sections_skipped_locked"),
    ]

    operations = [
        migrations.AddField(
            model_name="synthesisrun",
            name="cancel_action",
            field=models.CharField(
                blank=True,
                choices=[("interrupt", "Interrupt"), ("rollback", "Rollback")],
                default="",
                help_text="interrupt (what it wrote stays) or rollback (what it wrote is reverted); blank: not "
                "cancelled.",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="synthesisrun",
            name="sections_before",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Each section the run wrote, as it was before the run's first write of it (null: it did "
                "not exist); recorded inside the memo's serialized write, read by a rollback.",
            ),
        ),
        migrations.AddField(
            model_name="synthesisrun",
            name="rolled_back_sections",
            field=models.JSONField(
                blank=True, default=list, help_text="Sections a rollback returned to their content before the run."
            ),
        ),
        migrations.AddField(
            model_name="synthesisrun",
            name="superseded_by",
            field=models.UUIDField(
                blank=True,
                null=True,
                help_text="The run whose multitask_strategy (interrupt, rollback) cancelled this one.",
            ),
        ),
    ]
