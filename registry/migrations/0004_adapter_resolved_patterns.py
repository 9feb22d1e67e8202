from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_job_dispatch"),
    ]

    operations = [
        migrations.AddField(
            model_name="adapterversion",
            name="resolved_patterns",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
