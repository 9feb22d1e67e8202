from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Adapter Registry"

    def ready(self):
        from registry import roles

        roles.connect_signals()  # a change to groups or namespace grants refreshes memoised roles
        from registry import (
            checks,  # noqa: F401  (registers the start-up checks)
            search,  # noqa: F401  (registers the indexed `name__substring` lookup)
        )
        from registry.audit import signals  # noqa: F401  (user, group, role and token changes are audited)
