import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY: pushes go on while it builds

    dependencies = [
        ("registry", "0017_version_namespace"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="adapterversion",
            index=models.Index(fields=["parent", "created_at", "id"], name="adapter_version_parent_keyset"),
        ),
        # The parent's own index goes once the composite that leads with it exists.
        migrations.AlterField(
            model_name="adapterversion",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="children",
                to="registry.adapterversion",
            ),
        ),
    ]
