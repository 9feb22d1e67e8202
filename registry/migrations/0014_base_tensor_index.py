from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("registry", "0013_residency")]

    operations = [
        migrations.AddField(
            model_name="basemodelversion",
            name="tensor_index",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
