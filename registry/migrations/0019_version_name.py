from django.db import migrations, models

# The version's copy of its adapter's name, set by the same BEFORE INSERT trigger as the namespace
# (migration 0017), so a common name search filters the version row it walks instead of looking up
# each version's adapter (BENCHMARKS.md, scale). One statement replaces the function's body, so no
# insert runs without it; the function and trigger are renamed for what they now copy.
COPY_TRIGGER_SQL = [
    """
    CREATE OR REPLACE FUNCTION registry_adapterversion_namespace() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        SELECT namespace, name INTO NEW.namespace, NEW.name FROM registry_adapter WHERE id = NEW.adapter_id;
        RETURN NEW;
    END $$
    """,
    "ALTER FUNCTION registry_adapterversion_namespace() RENAME TO registry_adapterversion_from_adapter",
    "ALTER TRIGGER registry_adapterversion_namespace ON registry_adapterversion"
    " RENAME TO registry_adapterversion_from_adapter",
]
DROP_COPY_TRIGGER_SQL = [
    "ALTER TRIGGER registry_adapterversion_from_adapter ON registry_adapterversion"
    " RENAME TO registry_adapterversion_namespace",
    "ALTER FUNCTION registry_adapterversion_from_adapter() RENAME TO registry_adapterversion_namespace",
    """
    CREATE OR REPLACE FUNCTION registry_adapterversion_namespace() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.namespace := (SELECT namespace FROM registry_adapter WHERE id = NEW.adapter_id);
        RETURN NEW;
    END $$
    """,
]

# Nothing in the registry renames an adapter or moves it to another namespace (the admin shows both
# read-only), but an operator's UPDATE could: the versions' copies follow, so a search or a namespace
# filter never disagrees with the adapter. Fires only when one of the two really changes.
FOLLOW_ADAPTER_SQL = [
    """
    CREATE FUNCTION registry_adapter_to_versions() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE registry_adapterversion SET namespace = NEW.namespace, name = NEW.name WHERE adapter_id = NEW.id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER registry_adapter_to_versions AFTER UPDATE OF namespace, name ON registry_adapter
        FOR EACH ROW WHEN (OLD.namespace IS DISTINCT FROM NEW.namespace OR OLD.name IS DISTINCT FROM NEW.name)
        EXECUTE FUNCTION registry_adapter_to_versions()
    """,
]
DROP_FOLLOW_ADAPTER_SQL = [
    "DROP TRIGGER registry_adapter_to_versions ON registry_adapter",
    "DROP FUNCTION registry_adapter_to_versions()",
]

# After the trigger copies names, so every row is covered by one or the other. A batch of adapters
# at a time, each its own transaction: one statement over 2x10^6 versions took 560 s here and held
# every version's row lock that long, so no check or evaluation could record a status meanwhile.
BACKFILL_SQL = """
UPDATE registry_adapterversion v SET name = a.name
FROM registry_adapter a WHERE a.id >= %s AND a.id < %s AND v.adapter_id = a.id AND v.name = ''
"""
BACKFILL_BATCH = 10_000  # adapters


def backfill_names(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM registry_adapter")
        (last_id,) = cursor.fetchone()
        for start in range(0, last_id + 1, BACKFILL_BATCH):
            cursor.execute(BACKFILL_SQL, [start, start + BACKFILL_BATCH])


# As for the adapter's name (0017): the planner estimates `name ILIKE '%support%'` from the column's
# histogram, and must see that a tenth of the versions match to walk the list order for a page.
# VACUUM as well: the backfill left a dead copy of every version row behind (28 s at 2x10^6).
NAME_STATISTICS_SQL = [
    "ALTER TABLE registry_adapterversion ALTER COLUMN name SET STATISTICS 1000",
    "VACUUM (ANALYZE) registry_adapterversion",
]


class Migration(migrations.Migration):
    atomic = False  # each backfill batch commits on its own, and VACUUM runs outside a transaction

    dependencies = [
        ("registry", "0018_parent_keyset"),
    ]

    operations = [
        migrations.AddField(
            model_name="adapterversion",
            name="name",
            field=models.CharField(db_default="", editable=False, max_length=128),
        ),
        migrations.RunSQL(COPY_TRIGGER_SQL, reverse_sql=DROP_COPY_TRIGGER_SQL),
        migrations.RunSQL(FOLLOW_ADAPTER_SQL, reverse_sql=DROP_FOLLOW_ADAPTER_SQL),
        migrations.RunPython(backfill_names, reverse_code=migrations.RunPython.noop),
        migrations.RunSQL(
            NAME_STATISTICS_SQL,
            reverse_sql="ALTER TABLE registry_adapterversion ALTER COLUMN name SET STATISTICS -1",
        ),
    ]
