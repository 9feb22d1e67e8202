from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

# Every version carries its adapter's namespace, set by the database on insert whoever inserts
# (the ingest service, a bulk load, a test's bulk_create), so it cannot drift from the adapter's.
NAMESPACE_TRIGGER_SQL = """
CREATE FUNCTION registry_adapterversion_namespace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.namespace := (SELECT namespace FROM registry_adapter WHERE id = NEW.adapter_id);
    RETURN NEW;
END $$;
CREATE TRIGGER registry_adapterversion_namespace BEFORE INSERT ON registry_adapterversion
    FOR EACH ROW EXECUTE FUNCTION registry_adapterversion_namespace();
"""
DROP_NAMESPACE_TRIGGER_SQL = """
DROP TRIGGER registry_adapterversion_namespace ON registry_adapterversion;
DROP FUNCTION registry_adapterversion_namespace();
"""
# After the trigger exists, so every row is covered by one or the other.
BACKFILL_SQL = """
UPDATE registry_adapterversion v SET namespace = a.namespace
FROM registry_adapter a WHERE a.id = v.adapter_id AND v.namespace = ''
"""
# The search's common-or-rare choice is ours (registry/selectors.py), but once a search walks the
# list, the planner must know that '%support%' matches a tenth of the names: with the default
# 100-entry histogram it guessed 42 of 10^6 and read every name instead (BENCHMARKS.md, scale).
NAME_STATISTICS_SQL = """
ALTER TABLE registry_adapter ALTER COLUMN name SET STATISTICS 1000;
ANALYZE registry_adapter;
ANALYZE registry_adapterversion;
"""


class Migration(migrations.Migration):
    atomic = False  # the index is built CONCURRENTLY: pushes go on while it builds

    dependencies = [
        ("registry", "0016_base_adapter_counts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="adapterversion",
            name="namespace",
            field=models.CharField(db_default="", editable=False, max_length=64),
        ),
        migrations.RunSQL(NAMESPACE_TRIGGER_SQL, reverse_sql=DROP_NAMESPACE_TRIGGER_SQL),
        migrations.RunSQL(BACKFILL_SQL, reverse_sql=migrations.RunSQL.noop),
        AddIndexConcurrently(
            model_name="adapterversion",
            index=models.Index(fields=["namespace", "created_at", "id"], name="adapter_version_ns_keyset"),
        ),
        migrations.RunSQL(
            NAME_STATISTICS_SQL,
            reverse_sql="ALTER TABLE registry_adapter ALTER COLUMN name SET STATISTICS -1",
        ),
    ]
