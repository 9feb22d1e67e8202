from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.demo.seed import ensure_demo_users, ensure_roles, seed_demo


class Command(BaseCommand):
    help = "Create roles, demo users and demo models (embedded default only); safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="seed even when DATABASE_URL is set")

    def handle(self, *args, force=False, **options):
        ensure_roles()
        if not (settings.EMBEDDED or force):
            raise CommandError(
                "demo users are only created by the embedded default (DATABASE_URL unset); use --force to override"
            )
        ensure_demo_users()
        self.stdout.write("building and registering demo models (first run takes a minute)...")
        for ref in seed_demo(settings.VAR_DIR / "demo-build"):
            self.stdout.write(f"  {ref}")
