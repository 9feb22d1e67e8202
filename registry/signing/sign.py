"""Signing a model directory with model_signing (what `adapterctl sign` runs). No Django here.

The signature covers every regular file of the directory except model.sig itself,
which is exactly the set the registry accepts: no ignore paths beyond that, so a
signature made here never leaves out a file the registry will store.
"""

from pathlib import Path

from registry.signing.verify import SIGNATURE_FILE


def _config(key: Path, certificate: Path | None, chain: list[Path]):
    from model_signing import hashing, signing

    config = signing.Config().set_hashing_config(
        hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)
    )
    if certificate is None:
        return config.use_elliptic_key_signer(private_key=key)
    return config.use_certificate_signer(private_key=key, signing_certificate=certificate, certificate_chain=chain)


def sign_directory(
    directory: Path, *, key: Path, certificate: Path | None = None, chain: list[Path] = (), output: Path | None = None
) -> Path:
    """Write a model-signing v1.0 bundle over `directory` (default `directory/model.sig`); return its path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    output = Path(output) if output else directory / SIGNATURE_FILE
    _config(Path(key), certificate, list(chain)).sign(directory, output)
    return output
