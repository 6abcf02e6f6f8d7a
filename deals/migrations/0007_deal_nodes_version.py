from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deals", "0006_org_webhook_secret"),
    ]

    operations = [
        migrations.AddField(
            model_name="deal",
            name="nodes_version",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
