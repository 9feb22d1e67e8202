from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0004_adapter_resolved_patterns"),
    ]

    operations = [
        migrations.AddField(
            model_name="adapterversion",
            name="card",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="basemodelversion",
            name="card",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
