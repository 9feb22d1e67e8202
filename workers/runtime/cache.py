"""The worker's resident cache over registry versions: their files materialized from the
blob store, adapter configs with the patterns resolved at ingest. The cache itself
(LRU of bases by bytes, adapters attached and switched without reloading the base) is
workers/runtime/resident.py, which needs no Django.

One cache per worker process (GPU workers run a solo pool, so tasks share it).
"""

import shutil
import tempfile
from pathlib import Path

from django.conf import settings

from registry.formats.peft_config import adapted_modules, peft_overrides, resolve_patterns
from registry.models import AdapterVersion
from registry.services.jobs import version_tensor_headers
from registry.services.suites import CLASSIFICATION_HEADS, version_head
from registry.storage import get_blob_store
from workers.runtime.resident import ByteTokenizer, DirectoryCache, HFTokenizer, ResidentBase  # noqa: F401 (tests import them here)


def materialize(version, root: Path) -> Path:
    """A directory holding the version's files under their names (links into the blob store)."""
    directory = root / str(version.id)
    if directory.exists():
        return directory
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{version.id}.", dir=root))
    store = get_blob_store()
    for file in version.files.all():
        store.materialize(file.blob_id, partial / file.path)
    try:
        partial.rename(directory)
    except OSError:  # another worker on this host finished first: same content
        shutil.rmtree(partial, ignore_errors=True)
    return directory


def head_for(adapter: AdapterVersion) -> tuple[str, int]:
    """Which model class the base is loaded as for this adapter: ("causal_lm"|"classification"|"encoder", labels)."""
    head = version_head(adapter)  # the registry's rule, so its up-front suite check cannot drift
    if head == "classification":
        saved = set(adapter.modules_to_save or [])
        module = next(h for h in CLASSIFICATION_HEADS if h in saved)
        tensors = version_tensor_headers(adapter)
        weight = next(
            (
                t
                for name, t in tensors.items()
                if name.endswith(f"{module}.weight") or name.endswith(f"{module}.out_proj.weight")
            ),
            None,
        )
        return head, weight.shape[0] if weight is not None else 2
    return head, 0


def peft_config_for(adapter: AdapterVersion, directory: Path):
    """The adapter's peft config with every user regex replaced by explicit module names.

    The names were resolved with RE2 at ingest (`resolve_patterns`); handed to peft as
    lists, they are matched by name, so peft's Python `re` never runs a user pattern here.
    """
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(directory)
    resolved = adapter.resolved_patterns
    if resolved is None:  # ingested before patterns were resolved: the same rule, now
        resolved = resolve_patterns(adapter.config, adapted_modules(version_tensor_headers(adapter)))
    for key, value in peft_overrides(resolved).items():
        setattr(config, key, set(value) if isinstance(value, list) else value)
    config.inference_mode = True
    return config


class ResidentCache(DirectoryCache):
    """The worker's cache: versions are registry rows, their files materialized from the blob store."""

    @property
    def seed(self) -> int:
        return settings.EVALUATION_SEED

    def version_directory(self, version) -> Path:
        return materialize(version, self.root / "versions")

    def adapter_config(self, adapter: AdapterVersion, directory: Path):
        return peft_config_for(adapter, directory)
