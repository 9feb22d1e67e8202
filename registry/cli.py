"""adapterctl: the registry from a CI pipeline or a terminal.

Reads ADAPTER_REGISTRY_URL and ADAPTER_REGISTRY_TOKEN. Exits 0 on success and
non-zero with one line on stderr otherwise; --json prints machine-readable output.
This module talks HTTP only and never imports Django, so it starts fast.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from registry import cli_promotions  # promote, approve, wait for a request, alias, canary, inventory, ...
from registry.metrics_display import direction, summary_line  # Django-free, like this client
from registry.residency.snapshot import ResidentSnapshot  # Django-free too

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_FAILURE = 1
UPLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=600.0, pool=10.0)
# registry.signing.verify.SIGNATURE_FILE; not imported from there, which would load cryptography on every start.
SIGNATURE_FILE = "model.sig"
BUNDLE_TYPE = "application/json"


class CliError(Exception):
    """A failure to report as one line; `code` and `status` when the registry gave them."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None):
        super().__init__(" ".join(message.split()))  # one line, whatever the cause said
        self.code = code
        self.status = status


# --- HTTP ---------------------------------------------------------------------------


class Registry:
    def __init__(self, url: str, token: str):
        if not token:
            raise CliError("no token: set ADAPTER_REGISTRY_TOKEN (POST /api/v1/auth/token gives one) or pass --token")
        self.client = httpx.Client(
            base_url=url.rstrip("/") + "/api/v1/",
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=UPLOAD_TIMEOUT,
        )
        self.url = url

    def request(self, method: str, path: str, **kwargs) -> dict:
        response = self._send(method, path, **kwargs)
        self.last_status = response.status_code  # 200 vs 201: push says whether it registered anything
        return _decoded(response)

    def download(self, path: str) -> bytes:
        """The raw bytes at a server path the API gave (a signature's bundle_url)."""
        response = self._send("GET", httpx.URL(self.url).join(path))
        if not response.is_success:
            _decoded(response)  # raises the registry's error as one line
        return response.content

    def _send(self, method: str, path, **kwargs) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            if self.url.startswith("https://") and "SSL" in str(exc).upper():
                raise CliError(
                    f"TLS handshake with {self.url} failed ({exc}); if the registry serves plain HTTP, use http://"
                ) from None
            raise CliError(f"cannot reach the registry at {self.url}: {exc}") from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the registry at {self.url}: {exc.__class__.__name__} {exc}") from None

    def get_version(self, ref: str, kind: str | None = None) -> tuple[str, dict]:
        """Look a reference up as an adapter, then as a base model (unless `kind` says which)."""
        if kind:
            return kind, self.request("GET", f"{kind}/{ref}")
        try:
            return "adapters", self.request("GET", f"adapters/{ref}")
        except CliError as adapter_error:
            if adapter_error.status != 404 or not adapter_error.code:  # not the registry's "not found"
                raise
            try:
                return "bases", self.request("GET", f"bases/{ref}")
            except CliError as base_error:
                if base_error.status != 404 or not base_error.code:
                    raise
            # Neither: say so for the adapter, which is what was asked for first.
            raise CliError(
                f"{adapter_error.code}: no adapter version (and no base version) matches {ref!r}",
                code=adapter_error.code,
                status=404,
            ) from None


def _decoded(response: httpx.Response) -> dict:
    """The JSON body of a registry answer; anything else (a wrong path, a proxy's page) is one clear line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    where = f"{response.request.method} {response.request.url}"
    if response.is_success:
        if body is None:
            kind = response.headers.get("content-type", "no content type")
            raise CliError(f"{where} answered HTTP {response.status_code} with {kind}, not the registry's JSON")
        return body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code", "error"))
        message = f"{code}: {error.get('message', '')} (HTTP {response.status_code})"
        raise CliError(message, code=code, status=response.status_code)
    kind = response.headers.get("content-type", "no content type")
    raise CliError(
        f"{where} answered HTTP {response.status_code} with {kind}, not the registry's JSON; is this the registry?",
        status=response.status_code,
    )


# --- Uploads ---------------------------------------------------------------------------


class ProgressReader:
    """A file object that advances a progress bar as httpx streams it."""

    def __init__(self, handle, bar):
        self.handle = handle
        self.bar = bar

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        if self.bar is not None:
            self.bar.update(len(data))
        return data

    def __getattr__(self, name):  # fileno, seek, tell: httpx uses them to size the body
        return getattr(self.handle, name)


def _directory_files(directory: Path, signature: Path | None = None) -> list[tuple[str, Path]]:
    """The files a push sends: everything but a signature bundle, which is never one of the version's files."""
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory")
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative == SIGNATURE_FILE or (signature is not None and path.resolve() == signature.resolve()):
            continue
        if path.is_symlink():
            raise CliError(f"{relative} is a symbolic link; the registry accepts regular files only")
        if path.is_file():
            files.append((relative, path))
    if not files:
        raise CliError(f"{directory} contains no files")
    return files


def _progress_bar(total: int, enabled: bool, desc: str = "upload"):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr, leave=False)


def _upload(
    registry: Registry, endpoint: str, directory: Path, fields: dict, show_progress: bool, signature: Path | None = None
) -> dict:
    files = _directory_files(directory, signature)
    total = sum(path.stat().st_size for _, path in files)
    bar = _progress_bar(total, show_progress)
    try:
        with ExitStack() as stack:
            parts = [
                (
                    "file",
                    (relative, ProgressReader(stack.enter_context(path.open("rb")), bar), "application/octet-stream"),
                )
                for relative, path in files
            ]
            if signature is not None:
                parts.append(("signature", (SIGNATURE_FILE, stack.enter_context(signature.open("rb")), BUNDLE_TYPE)))
            return registry.request("POST", endpoint, data=fields, files=parts)
    finally:
        if bar is not None:
            bar.close()


# --- Commands ----------------------------------------------------------------------------


def _print_version(kind: str, body: dict) -> None:
    print(f"{body['ref']}  {body['status']}")
    print(f"  id:      {body['id']}")
    print(f"  digest:  sha256:{body['digest']}")
    if kind == "adapters":
        print(f"  base:    {body['base']['ref']}")
        if body.get("parent"):
            print(f"  parent:  {body['parent']['ref']}")
        print(
            f"  type:    {body['peft_type']} r={body['r']} alpha={body['lora_alpha']} targets={','.join(body['target_modules'])}"
        )
        print(
            f"  size:    {body['tensor_count']} tensors, {body['parameter_count']:,} parameters, {body['total_bytes']:,} bytes"
        )
        if "signed" in body:
            print(f"  signed:  {'yes' if body['signed'] else 'no'}")
    else:
        print(
            f"  arch:    {body['architecture']} ({body['model_type']}), {body['num_layers']} layers, hidden {body['hidden_size']}"
        )
        print(f"  size:    {body['parameter_count']:,} parameters ({body['dtype']}), {body['total_bytes']:,} bytes")


def cmd_push_base(args, registry: Registry) -> None:
    if args.signature:
        raise CliError("--signature is for adapter pushes (adapterctl push); base models are not signed here")
    body = _upload(registry, "bases/", Path(args.directory), {"name": args.name}, args.progress)
    _emit(args, "bases", body)


def _mlflow_adapter(run_uri: str, destination: Path) -> tuple[Path, dict]:
    """Download an adapter logged to an MLflow run and read its provenance from the run."""
    try:
        import mlflow
        from mlflow.artifacts import download_artifacts
    except ImportError:
        raise CliError("--mlflow-run needs the mlflow package") from None
    if not run_uri.startswith("runs:/"):
        raise CliError(f"--mlflow-run takes runs:/<run_id>/<artifact path>, got {run_uri!r}")
    run_id = run_uri.removeprefix("runs:/").split("/", 1)[0]
    try:
        directory = Path(download_artifacts(artifact_uri=run_uri, dst_path=str(destination)))
        run = mlflow.MlflowClient().get_run(run_id)
    except Exception as exc:  # mlflow raises MlflowException and transport errors
        raise CliError(f"cannot read MLflow run {run_uri}: {exc}") from None
    provenance = {"mlflow_run_id": run_id, "mlflow_run_uri": run_uri, "params": dict(run.data.params)}
    commit = run.data.tags.get("mlflow.source.git.commit", "")
    if commit:
        provenance["code_commit"] = commit[:64]
    inputs = getattr(run, "inputs", None)
    datasets = getattr(inputs, "dataset_inputs", None) or []
    if datasets:
        provenance["dataset_name"] = datasets[0].dataset.name[:256]
        provenance["dataset_digest"] = datasets[0].dataset.digest[:128]
    return directory, provenance


def _read_provenance(path: str | None) -> dict:
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read provenance file {path}: {exc}") from None


def cmd_push(args, registry: Registry) -> None:
    fields = {"name": args.name, "base": args.base}
    if args.parent:
        fields["parent"] = args.parent
    provenance = _read_provenance(args.provenance)
    with tempfile.TemporaryDirectory(prefix="adapterctl-") as scratch:
        if args.mlflow_run:
            directory, from_run = _mlflow_adapter(args.mlflow_run, Path(scratch))
            provenance = {**from_run, **provenance}
        elif args.directory:
            directory = Path(args.directory)
        else:
            raise CliError("push needs a DIRECTORY or --mlflow-run runs:/<run_id>/<path>")
        if provenance:
            fields["provenance"] = json.dumps(provenance)
        signature = _push_signature(directory, args.signature, args.json)
        body = _upload(registry, "adapters/", directory, fields, args.progress, signature)
    if registry.last_status == 200:  # the same files are already a version: nothing new, not an error
        print(f"already registered as {body['ref']}", file=sys.stderr if args.json else sys.stdout)
    _emit(args, "adapters", body)


def _push_signature(directory: Path, given: str | None, quiet: bool) -> Path | None:
    """The bundle a push sends: --signature FILE, else DIR/model.sig when the directory has one."""
    if given:
        path = Path(given)
        if not path.is_file():
            raise CliError(f"--signature {given}: no such file")
    else:
        path = directory / SIGNATURE_FILE
        if not path.is_file():
            return None
    print(f"signature: {path} (sent with the push, not stored as a file)", file=sys.stderr if quiet else sys.stdout)
    return path


FINAL_STATUSES = {"ready", "rejected"}


def cmd_wait(args, registry: Registry) -> None:
    """Block until checks and evaluations finish; fail on rejection or a failed job.
    A promotion request id waits for that request instead (registry/cli_promotions.py)."""
    if (request := cli_promotions.promotion_wait_target(args, registry)) is not None:
        return cli_promotions.promotion_wait(args, registry, request)
    deadline = time.monotonic() + args.timeout
    last_line = None
    while True:
        body = registry.request("GET", f"adapters/{args.ref}/checks")
        line = f"{body['ref']}: {body['status']}, {body['pending']} job(s) pending"
        if line != last_line and not args.json:
            print(line, file=sys.stderr)
            last_line = line
        if body["status"] in FINAL_STATUSES and body["pending"] == 0:
            break
        if time.monotonic() > deadline:
            raise CliError(f"timed out after {args.timeout}s: {line}")
        time.sleep(args.interval)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        _print_checks(body)
    if body["status"] == "rejected":
        raise CliError(f"rejected: {body['status_reason']}")
    failed = [job for job in body["jobs"] if job["state"] == "failed"]
    if failed:
        raise CliError(f"{failed[0]['kind']} job {failed[0]['id']} failed: {failed[0]['error']}")


def _print_checks(body: dict) -> None:
    for check in body["checks"]:
        print(
            f"check {check['kind']}: {check['verdict']}"
            + (f" ({'; '.join(check['reasons'])})" if check["reasons"] else "")
        )
    for job in body["jobs"]:
        if job["kind"] != "evaluation" or job["state"] != "succeeded":
            continue
        result = job["result"]
        reference = result.get("reference")
        if isinstance(reference, dict):
            print(f"eval {job['suite']} reference: {reference['ref'] or '—'} ({reference['reason']})")
        # Direction, 4 significant digits and deltas as the version page shows them (registry.metrics_display).
        for metric in result["metrics"].get("adapter") or {}:
            if direction(metric):
                print(f"eval {job['suite']} {summary_line(metric, result['metrics'])}")


def cmd_suite_push(args, registry: Registry) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a file")
    with path.open("rb") as handle:
        body = registry.request(
            "POST",
            "suites/",
            data={"name": args.name, "task_type": args.task_type},
            files=[("file", (path.name, handle, "application/jsonl"))],
        )
    print(
        json.dumps(body, indent=2)
        if args.json
        else f"{body['ref']}  {body['task_type']}  {body['example_count']} examples"
    )


def cmd_suite_attach(args, registry: Registry) -> None:
    body = registry.request("POST", f"suites/{args.suite}/attach", json={"adapter": args.adapter})
    print(
        json.dumps(body, indent=2) if args.json else f"{body['ref']} now runs for every new version of {args.adapter}"
    )


def cmd_evaluate(args, registry: Registry) -> None:
    body = registry.request("POST", f"adapters/{args.ref}/evaluations", json={"suite": args.suite})
    print(
        json.dumps(body, indent=2)
        if args.json
        else f"evaluation {body['id']} queued on {body['queue'] or 'the pool'}; adapterctl wait {args.ref}"
    )


def cmd_workers(args, registry: Registry) -> None:
    body = registry.request("GET", "workers/")
    if args.json:
        print(json.dumps(body, indent=2))
        return
    for worker in body:
        # A malformed heartbeat lists what of it validates rather than failing the command.
        snapshot = ResidentSnapshot.from_dict(worker.get("resident"), strict=False)
        bases = ", ".join(base.ref for base in snapshot.bases) or "-"
        print(f"{worker['hostname']:<40} {worker['state']:<8} {worker['device_type']:<5} resident: {bases}")


def cmd_show(args, registry: Registry) -> None:
    kind, body = registry.get_version(args.ref, "bases" if args.base else None)
    checks = registry.request("GET", f"adapters/{body['id']}/checks") if kind == "adapters" else None
    if args.json:
        print(json.dumps({**body, "checks": checks} if checks else body, indent=2))
        return
    _print_version(kind, body)
    print(f"  pushed:  {body.get('created_at', '?')} by {body.get('created_by') or 'unknown'}")
    if kind == "adapters":
        _print_provenance(body.get("provenance") or {})
        if body.get("status_reason"):
            print(f"  reason:  {body['status_reason']}")
        _print_checks(checks)


def _print_provenance(provenance: dict) -> None:
    shown = {key: value for key, value in provenance.items() if value not in ("", None, {}, [])}
    if not shown:
        print("  provenance: none recorded")
        return
    for key, value in shown.items():
        text = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else value
        print(f"  {key}: {text}")


def cmd_ls(args, registry: Registry) -> None:
    kind = "bases" if args.bases else "adapters"
    params = {
        k: v
        for k, v in {
            "base": args.base,
            "name": args.name,
            "namespace": args.namespace,
            "status": args.status,
            "created_by": args.created_by,
            "page_size": args.limit,
        }.items()
        if v
    }
    body = registry.request("GET", f"{kind}/", params=params)
    if args.json:
        print(json.dumps(body["results"], indent=2))
        return
    if not body["results"]:
        print("no versions match", file=sys.stderr)
        return
    detail_header = "BASE / RANK" if kind == "adapters" else "ARCHITECTURE / PARAMETERS"
    print(f"{'VERSION':<40} {'STATUS':<9} {'PUSHED (UTC)':<17} {'BY':<12} {detail_header}")
    for row in body["results"]:
        detail = (
            f"{row['base']['ref']} r={row['r']}"
            if kind == "adapters"
            else f"{row['architecture']} {row['parameter_count']:,}"
        )
        pushed = _utc_minutes(row.get("created_at"))
        print(f"{row['ref']:<40} {row['status']:<9} {pushed:<17} {row.get('created_by') or '-':<12} {detail}")
    if body.get("next"):
        print(f"(first {len(body['results'])}; raise --limit, up to 200, or narrow the filters)", file=sys.stderr)


def _utc_minutes(timestamp: str | None) -> str:
    """An API timestamp (RFC 3339, UTC) as 'YYYY-MM-DD HH:MM'."""
    return timestamp[:16].replace("T", " ") if timestamp else "-"


def cmd_token_rotate(args, registry: Registry) -> None:
    # Only the token on stdout, so `export ADAPTER_REGISTRY_TOKEN=$(adapterctl token rotate)` works.
    body = registry.request("POST", "auth/token/rotate")
    print(json.dumps(body) if args.json else body["token"])
    print("adapterctl: the old token no longer works; use the new one", file=sys.stderr)


def cmd_pull(args, registry: Registry) -> None:
    from registry import pull  # download and verify: registry/pull.py

    try:
        result = pull.run(args, registry)
    except pull.PullError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result, indent=2) if args.json else pull.summary_line(result))


# --- Signatures ----------------------------------------------------------------------------
# sign, sign-attach and verify. The signing modules load cryptography, model_signing and
# sigstore, so they are imported inside the commands that use them.


def _signer_text(summary: dict, *, is_registry: bool = False) -> str:
    """Who signed, from a verification summary (identity, issuer, key_fingerprint, method)."""
    if is_registry:
        return f"the registry (key {(summary.get('key_fingerprint') or '?')[:16]})"
    identity = summary.get("identity") or summary.get("key_id") or summary.get("key_fingerprint") or "?"
    if summary.get("method") == "keyless" and summary.get("issuer"):
        return f"{identity} via {summary['issuer']}"
    return identity


def _row_summary(row: dict) -> dict:
    """An API signature row in the shape of a verification summary."""
    return {
        "method": row.get("method"),
        "identity": row.get("signer_identity"),
        "issuer": row.get("signer_issuer"),
        "key_fingerprint": row.get("key_fingerprint"),
    }


SIGNING_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def _check_signing_key(path: Path) -> None:
    """One clear line for a key model_signing cannot use (an RSA key would fail deep inside it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not path.is_file():
        raise CliError(f"--key {path}: no such file")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:
        raise CliError(f"--key {path} is encrypted; model_signing needs an unencrypted PEM private key") from None
    except ValueError as exc:
        raise CliError(f"--key {path} is not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in SIGNING_CURVES:
        raise CliError(f"--key {path} is not an ECDSA P-256, P-384 or P-521 key, which model_signing needs")


def _signature_output(directory: Path, given: str | None) -> Path:
    """Where `sign` writes; inside DIR only as DIR/model.sig, since a push would send any other file there."""
    output = Path(given) if given else directory / SIGNATURE_FILE
    inside = output.resolve().is_relative_to(directory.resolve())
    if inside and output.resolve() != (directory / SIGNATURE_FILE).resolve():
        raise CliError(
            f"--output {output} is inside {directory}, where a push would send it as a model file; "
            f"write {directory / SIGNATURE_FILE} or a path outside the directory"
        )
    return output


def _bundle_statement(raw: bytes) -> dict:
    """The in-toto statement a model-signing bundle signs (read only to report what was signed)."""
    import base64

    return json.loads(base64.b64decode(json.loads(raw)["dsseEnvelope"]["payload"]))


def cmd_sign(args, _registry) -> None:
    from registry.signing.sign import sign_directory

    directory, key = Path(args.directory), Path(args.key)
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory")
    _check_signing_key(key)
    if args.chain and not args.certificate:
        raise CliError("--chain goes with --certificate (the signing certificate it leads to)")
    for path in [args.certificate, *args.chain] if args.certificate else []:
        if not Path(path).is_file():
            raise CliError(f"{path}: no such file")
    output = _signature_output(directory, args.output)
    try:
        written = sign_directory(
            directory,
            key=key,
            certificate=Path(args.certificate) if args.certificate else None,
            chain=[Path(c) for c in args.chain],
            output=output,
        )
    except (ValueError, TypeError, OSError) as exc:  # unreadable certificates, a chain that does not fit, I/O
        raise CliError(f"cannot sign {directory}: {exc}") from None
    statement = _bundle_statement(written.read_bytes())
    result = {
        "signature": str(written),
        "method": "certificate" if args.certificate else "key",
        "files": len(statement["predicate"]["resources"]),
        "digest": statement["subject"][0]["digest"]["sha256"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    files = f"{result['files']} file{'s' if result['files'] != 1 else ''}"
    print(
        f"{written}: {result['method']} signature over {files} of {directory}, "
        f"manifest root sha256:{result['digest']} (the digest a push of them gets)"
    )


def cmd_sign_attach(args, registry: Registry) -> None:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path} is not a file")
    with path.open("rb") as handle:
        body = registry.request(
            "POST", f"adapters/{args.ref}/signatures", files=[("signature", (SIGNATURE_FILE, handle, BUNDLE_TYPE))]
        )
    if args.json:
        print(json.dumps(body, indent=2))
        return
    attached = "attached" if registry.last_status == 201 else "already attached"
    trust = "" if body["trusted"] else " (genuine, but the policy names no such signer)"
    print(
        f"{args.ref}: {attached} {body['method']} signature by {_signer_text(_row_summary(body))}: "
        f"{body['result']}{trust}, policy v{body['policy_version']}"
    )


def _registry_key_policy(registry: Registry, public_key: str | None):
    """The keys the counter-signature may be made with: the registry's published keys, or only --public-key."""
    from registry.signing.policy import PolicyInvalid, parse_policy

    if public_key:
        try:
            keys = [{"id": "public-key", "public_key_pem": Path(public_key).read_text()}]
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --public-key {public_key}: {exc}") from None
        where = f"--public-key {public_key}"
    else:
        published = registry.request("GET", "keys")
        keys = [{"id": f"registry:{row['key_id'][:16]}", "public_key_pem": row["public_key_pem"]} for row in published]
        where = "a key the registry publishes at /api/v1/keys"
    try:
        return parse_policy({"methods": ["key"], "trusted_keys": keys})
    except PolicyInvalid as exc:
        raise CliError(f"{where} {exc.message}") from None  # e.g. "... is not a PEM public key: ..."


def _namespace_policy(registry: Registry, namespace: str):
    from registry.signing.policy import PolicyInvalid, parse_policy

    body = registry.request("GET", f"namespaces/{namespace}/signing-policy")
    try:
        return body["version"], parse_policy(body["policy"])
    except PolicyInvalid as exc:
        raise CliError(f"the signing policy of {namespace!r} (v{body['version']}) cannot be applied: {exc}") from None


def _trusted_root(path: str | None):
    from registry.signing.verify import load_trusted_root

    try:
        return load_trusted_root(path)
    except Exception as exc:  # OSError, JSON and sigstore's own errors: all mean an unusable file
        raise CliError(f"cannot load the trusted root {path or '(packaged with sigstore)'}: {exc}") from None


def _local_files(directory: Path) -> dict[str, str]:
    from registry.signing.verify import SignatureRefused, hash_files

    try:
        return hash_files(directory)
    except SignatureRefused as refused:
        raise CliError(f"{refused.code}: {refused.message}") from None
    except OSError as exc:
        raise CliError(f"cannot read {directory}: {exc}") from None


def _verify_signature(row: dict, raw: bytes, policy, root, files: dict, digest: str) -> dict:
    """One signature checked here, against `files`: the bundle's cryptography and signer, then the file set."""
    from registry.signing.verify import SignatureRefused, match_files, verify_bundle

    outcome = {"id": row["id"], "is_registry": row["is_registry"]}
    try:
        verified = verify_bundle(raw, policy, root)
        match_files(verified, files, expected_digest=digest)
    except SignatureRefused as refused:
        summary = {**_row_summary(row), **{k: v for k, v in refused.details.items() if v}}
        signer = _signer_text(summary, is_registry=row["is_registry"])
        return {**outcome, "method": summary.get("method"), "signer": signer, "result": "failed",
                "trusted": False, "code": refused.code, "reason": refused.message}  # fmt: skip
    summary = verified.summary()
    signer = _signer_text(summary, is_registry=row["is_registry"])
    return {**outcome, "method": verified.method, "signer": signer, "result": "passed",
            "trusted": verified.trusted, "code": "", "reason": ""}  # fmt: skip


def _registry_reason(outcome: dict, public_key: str | None) -> str:
    """The counter-signature's refusal in words about the registry (verify's own speak of a namespace)."""
    if outcome["code"] != "signature_identity_mismatch":
        return f"the registry's counter-signature: {outcome['reason']}"
    trusted = f"the key in --public-key {public_key}" if public_key else "a key the registry publishes"
    return f"the counter-signature is by {outcome['signer']}, which is not {trusted}"


def _files_problem(files: dict, version: dict, directory: Path) -> str | None:
    """Why the local files are not the version's, naming the first file that differs; None when they are."""
    from registry.formats.manifest import manifest_digest

    ref, listed = version["ref"], {f["path"]: f["sha256"] for f in version["files"]}
    missing, extra = sorted(set(listed) - set(files)), sorted(set(files) - set(listed))
    if missing:
        return f"{missing[0]} of {ref} is missing from {directory}"
    if extra:
        return f"{extra[0]} is in {directory} but is not a file of {ref}"
    changed = [name for name in sorted(files) if files[name] != listed[name]]
    if changed:
        return f"{changed[0]} has sha256 {files[changed[0]]}, but {ref} lists {listed[changed[0]]}"
    root = manifest_digest(files.items())
    if root != version["digest"]:
        return f"the files' manifest root is sha256:{root}, but the digest of {ref} is sha256:{version['digest']}"
    return None


def _verify_problems(outcomes: list[dict], files_problem: str | None, policy, version: dict, args) -> list[str]:
    """Every reason the check fails, most specific first: signatures, the files, missing signatures."""
    problems = []
    for outcome in outcomes:
        if outcome["result"] == "failed":
            reason = _registry_reason(outcome, args.public_key) if outcome["is_registry"] else outcome["reason"]
            problems.append(f"{outcome['code']}: {reason}")
    if files_problem:
        problems.append(f"digest_mismatch: {files_problem}")
    if not any(o["is_registry"] for o in outcomes):  # one that failed is reported above
        problems.append(
            f"countersignature_missing: no counter-signature from the registry on {version['ref']} "
            "(it counter-signs a version once its checks pass)"
        )
    if policy.require_signature and not any(o["trusted"] and not o["is_registry"] for o in outcomes):
        problems.append(
            f"signature_required: namespace {version['namespace']!r} requires a signature from a trusted signer; "
            f"{version['ref']} has none that verifies"
        )
    return problems


def cmd_verify(args, registry: Registry) -> None:
    """Fetch what the registry says about a version, then check a local copy of it offline."""
    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory")
    version = registry.request("GET", f"adapters/{args.ref}")
    rows = registry.request("GET", f"adapters/{version['id']}/signatures")  # by id: an alias may move
    bundles = [registry.download(row["bundle_url"]) for row in rows]
    registry_policy = _registry_key_policy(registry, args.public_key)
    policy_version, policy = _namespace_policy(registry, version["namespace"])
    root = _trusted_root(args.trusted_root)
    # From here on nothing is fetched: the verdict rests on the files in DIRECTORY.
    files = _local_files(directory)
    outcomes = [
        _verify_signature(row, raw, registry_policy if row["is_registry"] else policy, root, files, version["digest"])
        for row, raw in zip(rows, bundles, strict=True)
    ]
    problems = _verify_problems(outcomes, _files_problem(files, version, directory), policy, version, args)
    if args.json:
        print(json.dumps({"ref": version["ref"], "digest": version["digest"], "directory": str(directory),
                          "policy_version": policy_version, "verified": not problems, "signatures": outcomes,
                          "problems": problems}, indent=2))  # fmt: skip
    else:
        _print_verification(version, directory, files, outcomes, problems)
    if problems:
        raise CliError(problems[0])


def _print_verification(version: dict, directory: Path, files: dict, outcomes: list[dict], problems: list) -> None:
    print(f"{version['ref']}  sha256:{version['digest']}  {len(files)} files in {directory}")
    for outcome in outcomes:
        kind = "registry" if outcome["is_registry"] else "signature"
        result = outcome["result"] if outcome["result"] == "passed" else f"FAILED {outcome['code']}"
        if outcome["result"] == "passed" and not outcome["trusted"]:
            result += " (genuine, but the policy names no such signer)"
        print(f"  {kind:<10} {outcome['method'] or '?':<12} {outcome['signer']}  {result}")
    if not problems:
        signers = ", ".join(o["signer"] for o in outcomes if not o["is_registry"])
        signed = f"signed by {signers} and " if signers else ""
        print(f"verified: the files are {version['ref']}, {signed}counter-signed by the registry")


def _emit(args, kind: str, body: dict) -> None:
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        _print_version(kind, body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adapterctl", description="Push and inspect base models and adapters.")
    parser.add_argument(
        "--url",
        default=os.environ.get("ADAPTER_REGISTRY_URL", DEFAULT_URL),
        help="registry URL (env ADAPTER_REGISTRY_URL)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("ADAPTER_REGISTRY_TOKEN", ""), help="API token (env ADAPTER_REGISTRY_TOKEN)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)

    push_base = commands.add_parser("push-base", help="push a base model directory (Hugging Face layout)")
    push_base.add_argument("directory", help="config.json, *.safetensors (+ index), tokenizer and generation files")
    push_base.add_argument("--name", required=True, help="namespace/name")
    push_base.add_argument("--signature", help=argparse.SUPPRESS)  # refused with a line saying why
    push_base.set_defaults(handler=cmd_push_base)

    push = commands.add_parser("push", help="push an adapter directory (PEFT layout)")
    push.add_argument("directory", nargs="?", help="the adapter directory (or use --mlflow-run)")
    push.add_argument(
        "--mlflow-run", help="import the adapter and its provenance from an MLflow run: runs:/<run_id>/<path>"
    )
    push.add_argument("--name", required=True, help="namespace/name")
    push.add_argument("--base", required=True, help="the base model version it was trained on (any reference)")
    push.add_argument("--parent", help="the adapter version it was fine-tuned from")
    push.add_argument(
        "--provenance",
        help="JSON file: mlflow_run_id, mlflow_run_uri, dataset_name, dataset_digest, code_commit, params",
    )
    push.add_argument(
        "--signature",
        metavar="FILE",
        help=f"a model-signing bundle over the directory, sent with the push (default: DIRECTORY/{SIGNATURE_FILE} "
        f"when present); {SIGNATURE_FILE} is never uploaded as a file",
    )
    push.set_defaults(handler=cmd_push)

    show = commands.add_parser("show", help="show one version (adapter, else base model)")
    show.add_argument("ref", help="namespace/name:vN, namespace/name@sha256:<hex>, an alias (:production) or a UUID")
    show.add_argument("--base", action="store_true", help="look the reference up as a base model only")
    show.set_defaults(handler=cmd_show)

    wait = commands.add_parser(
        "wait", help="wait for a version's checks and evaluations, or for a promotion request; exit 1 on failure"
    )
    wait.add_argument("ref", help="the adapter version (any reference), or a promotion request id")
    wait.add_argument("--promotion", action="store_true", help="REF is a promotion request id (a UUID is tried as one)")
    cli_promotions.add_wait_options(wait)
    wait.set_defaults(handler=cmd_wait, fail=CliError)

    evaluate = commands.add_parser("evaluate", help="evaluate an adapter version on a suite now")
    evaluate.add_argument("ref", help="the adapter version (any reference)")
    evaluate.add_argument("--suite", required=True, help="the suite version, e.g. acme/support-eval:v1")
    evaluate.set_defaults(handler=cmd_evaluate)

    suite = commands.add_parser("suite", help="evaluation suites").add_subparsers(dest="suite_command", required=True)
    suite_push = suite.add_parser("push", help="register a JSONL suite")
    suite_push.add_argument("file", help="JSONL: {text} lines, {text, label} or {prompt, answer}")
    suite_push.add_argument("--name", required=True, help="namespace/name")
    suite_push.add_argument(
        "--task-type",
        required=True,
        choices=["causal_lm", "classification", "exact_match"],
        help="what the suite measures: loss and perplexity, accuracy and macro F1, or exact match",
    )
    suite_push.set_defaults(handler=cmd_suite_push)
    suite_attach = suite.add_parser("attach", help="run a suite for every new version of an adapter name")
    suite_attach.add_argument("suite", help="the suite version, e.g. acme/support-eval:v1")
    suite_attach.add_argument(
        "--adapter", required=True, help="the adapter name (namespace/name) whose new versions run it"
    )
    suite_attach.set_defaults(handler=cmd_suite_attach)

    workers = commands.add_parser("workers", help="list workers and what they hold resident")
    workers.set_defaults(handler=cmd_workers)

    ls = commands.add_parser("ls", help="list adapter versions (or base versions with --bases)")
    ls.add_argument("--bases", action="store_true", help="list base model versions instead of adapters")
    ls.add_argument("--base", help="only adapters on this base version (any reference)")
    ls.add_argument("--name", help="only versions of this name (without the namespace)")
    ls.add_argument("--namespace", help="only versions in this namespace")
    ls.add_argument(
        "--status", choices=["received", "checking", "ready", "rejected"], help="only versions in this state"
    )
    ls.add_argument("--created-by", help="only versions pushed by this user")
    ls.add_argument("--limit", type=int, default=50, help="how many, newest first (50; at most 200)")
    ls.set_defaults(handler=cmd_ls)

    token = commands.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    token_rotate = token.add_parser("rotate", help="replace the current token with a new one (printed)")
    token_rotate.set_defaults(handler=cmd_token_rotate)
    from registry import cli_tokens  # adapterctl token create | list | revoke (scoped CI tokens)

    cli_tokens.add_parsers(token, CliError)

    from registry import pull

    pull.add_parser(commands).set_defaults(handler=cmd_pull)
    _add_signing_parsers(commands)
    from registry import cli_audit  # adapterctl audit events | export | verify

    cli_audit.add_parser(commands, CliError)
    cli_promotions.add_parser(commands, CliError)
    from registry import cli_residency  # adapterctl residency apply (a serving worker's plan, into its engine)

    cli_residency.add_parser(commands, CliError)
    from registry import cli_bulk  # adapterctl push-many (a JSONL manifest or a directory of adapters, in batches)

    cli_bulk.add_parser(commands, CliError)
    _accept_json_anywhere(parser)
    return parser


def _add_signing_parsers(commands) -> None:
    sign = commands.add_parser(
        "sign",
        help=f"sign an adapter directory with model_signing (writes DIRECTORY/{SIGNATURE_FILE}; offline)",
        description=(
            f"Write an OpenSSF model-signing v1.0 bundle over every file of DIRECTORY but {SIGNATURE_FILE}, "
            "signed with a private key (key method) or a key and its certificate (certificate method). "
            "Needs no registry, token or network; `adapterctl push DIRECTORY` then sends the bundle."
        ),
    )
    sign.add_argument("directory", help="the adapter directory to sign")
    sign.add_argument("--key", required=True, metavar="KEY.pem", help="unencrypted ECDSA private key (PEM)")
    sign.add_argument("--certificate", metavar="CERT.pem", help="the key's signing certificate (certificate method)")
    sign.add_argument(
        "--chain",
        nargs="+",
        action="extend",
        default=[],
        metavar="CA.pem",
        help="certificates from the signing certificate up to the root, with --certificate",
    )
    sign.add_argument(
        "--output", metavar="FILE", help=f"where to write the bundle (default DIRECTORY/{SIGNATURE_FILE})"
    )
    sign.set_defaults(handler=cmd_sign, offline=True)

    attach = commands.add_parser(
        "sign-attach",
        help="attach another party's signature to an adapter version",
        description=(
            "Send a model-signing bundle over an existing adapter version; the registry verifies it against the "
            "version's files and the namespace's signing policy and keeps it (exit 1 with the code when refused)."
        ),
    )
    attach.add_argument("ref", help="the adapter version (any reference)")
    attach.add_argument("file", help=f"the bundle, e.g. a {SIGNATURE_FILE} from `adapterctl sign --output`")
    attach.set_defaults(handler=cmd_sign_attach)

    verify = commands.add_parser(
        "verify",
        help="check a pulled copy of an adapter version against its signatures, offline",
        description=(
            "Fetch the version's digest, its signatures, the registry's public keys and the namespace's "
            "signing policy, then verify everything locally: each signature over the files in DIRECTORY, the "
            "registry's counter-signature, and the files' manifest root against the version's digest. "
            "Exit 1 naming the first mismatch."
        ),
    )
    verify.add_argument("ref", help="the adapter version (any reference)")
    verify.add_argument("directory", help="the local copy, e.g. from `adapterctl pull`")
    verify.add_argument(
        "--public-key",
        metavar="PEM",
        help="trust only this key for the registry's counter-signature (a copy obtained outside the registry)",
    )
    verify.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="Sigstore trusted_root.json for keyless signatures (default: the one packaged with sigstore)",
    )
    verify.set_defaults(handler=cmd_verify)


def _accept_json_anywhere(parser: argparse.ArgumentParser) -> None:
    """`adapterctl show REF --json` as well as `adapterctl --json show REF`: every subcommand
    takes --json too, defaulting to SUPPRESS so that it never resets the global flag."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in set(action.choices.values()):
                if not any(a.dest == "json" for a in subparser._actions):
                    subparser.add_argument(
                        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
                    )
                _accept_json_anywhere(subparser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.progress = sys.stderr.isatty() and not args.json
    try:
        args.handler(args, None if getattr(args, "offline", False) else Registry(args.url, args.token))
    except CliError as exc:
        print(f"adapterctl: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("adapterctl: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
