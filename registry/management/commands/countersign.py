"""Counter-sign ready adapter versions that have no registry signature yet (e.g. after a key problem)."""

from django.core.management.base import BaseCommand

from registry.models import AdapterVersion, Status
from registry.services.signatures import version_countersign


class Command(BaseCommand):
    help = "Counter-sign every ready adapter version that lacks the registry's signature."

    def handle(self, *args, **options):
        missing = AdapterVersion.objects.filter(status=Status.READY).exclude(signatures__is_registry=True)
        count = 0
        for version in missing.select_related("adapter").iterator():
            if version_countersign(version) is not None:
                count += 1
                self.stdout.write(f"counter-signed {version.ref}")
        self.stdout.write(f"{count} version(s) counter-signed")
