"""Show the registry's signing key (making it on first use), or rotate it with --rotate."""

from django.core.management.base import BaseCommand

from registry.signing.keys import active_key, rotate_signing_key


class Command(BaseCommand):
    help = (
        "Show the registry's signing key, creating it if absent. --rotate makes a new one; "
        "old public keys stay listed at /api/v1/keys (retired) so old signatures still verify."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rotate", action="store_true", help="replace the key with a new one")

    def handle(self, *args, rotate: bool, **options):
        key = active_key()
        if rotate:
            old, key = key, rotate_signing_key()
            self.stdout.write(f"retired {old.key_id}")
        self.stdout.write(f"signing with {key.key_id} ({key.path})")
