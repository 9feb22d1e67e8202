"""Start-up checks: settings that would otherwise fail in the middle of a request.

Django runs them before `migrate` (so before `make run` and the compose web start) and on
`manage.py check`."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def sigstore_trusted_root(app_configs, **kwargs):
    """Keyless signatures are checked against this file; a broken one must stop the start, not a push."""
    from registry.signing.verify import TrustRootInvalid, load_trusted_root

    try:
        load_trusted_root(settings.SIGSTORE_TRUSTED_ROOT)
    except TrustRootInvalid as exc:
        return [
            Error(
                str(exc),
                hint="point SIGSTORE_TRUSTED_ROOT at a Sigstore trusted_root.json, or unset it for the packaged one",
                id="registry.E001",
            )
        ]
    return []
