"""Links for a version's files: the API download (session-authenticated) and, for config
files, the page that shows them pretty-printed."""

from django import template
from django.urls import reverse

from registry.models import BaseModelVersion

register = template.Library()

# JSON configs people read to understand a version; weights and tokenizer vocabularies are
# downloaded, not shown (tokenizer.json is megabytes of vocabulary).
VIEWABLE_FILES = frozenset(
    {
        "adapter_config.json",
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "preprocessor_config.json",
    }
)


def is_viewable(path: str) -> bool:
    return path.rsplit("/", 1)[-1] in VIEWABLE_FILES


def _kind(version) -> str:
    return "base" if isinstance(version, BaseModelVersion) else "adapter"


@register.simple_tag
def file_download_url(version, file) -> str:
    return reverse(f"api-{_kind(version)}-file", kwargs={"ref": str(version.id), "path": file.path})


@register.simple_tag
def file_view_url(version, file) -> str:
    """The inline view of a config file, or "" for a file that is only downloaded."""
    if not is_viewable(file.path):
        return ""
    repository = version.base_model if _kind(version) == "base" else version.adapter
    return reverse(
        f"ui:{_kind(version)}-file",
        args=[repository.namespace, repository.name, version.number, file.path],
    )
