"""Replace the registry's signing key; the old public key stays listed (retired) at /api/v1/keys."""

from django.core.management.base import BaseCommand

from registry.signing.keys import active_key, rotate_signing_key


class Command(BaseCommand):
    help = "Generate a new registry signing key. Old public keys stay listed so old signatures still verify."

    def handle(self, *args, **options):
        old = active_key()
        new = rotate_signing_key()
        self.stdout.write(f"retired {old.key_id}\nnow signing with {new.key_id} ({new.path})")
