"""Evaluation suites: versioned, content-hashed JSONL datasets with a task type."""

from django.db import transaction
from django.db.models import Max

from registry import roles
from registry.audit.services import audit_record, audit_subject
from registry.errors import InvalidArtifact, NotFound, RegistryError
from registry.formats.artifact import IncomingFile
from registry.formats.strict_json import load_json
from registry.models import Adapter, AdapterVersion, Blob, EvaluationSuite, Status, SuiteAttachment
from registry.refs import parse_name
from registry.selectors import resolve_ref
from registry.storage import get_blob_store

MAX_SUITE_BYTES = 64 * 1024 * 1024
MAX_EXAMPLES = 100_000
SUITE_JSON_CODES = {"invalid": "suite_invalid", "nonfinite": "suite_invalid"}
REQUIRED_KEYS = {
    EvaluationSuite.TaskType.CAUSAL_LM: {"text": str},
    EvaluationSuite.TaskType.CLASSIFICATION: {"text": str, "label": int},
    EvaluationSuite.TaskType.EXACT_MATCH: {"prompt": str, "answer": str},
}
# The model class each task type runs on. Workers load the base as the adapter's head says
# (workers/runtime/cache.head_for) and refuse a misfit in runners.measure; the registry applies
# the same rule first, so a misfit suite is refused when it is attached or asked for.
REQUIRED_HEAD = {
    EvaluationSuite.TaskType.CAUSAL_LM: "causal_lm",
    EvaluationSuite.TaskType.CLASSIFICATION: "classification",
    EvaluationSuite.TaskType.EXACT_MATCH: "causal_lm",
}
CLASSIFICATION_HEADS = ("classifier", "score")


def version_head(version: AdapterVersion) -> str:
    """How a worker loads the base for this adapter: "classification", "causal_lm" or "encoder"."""
    if set(version.modules_to_save or []) & set(CLASSIFICATION_HEADS):
        return "classification"
    if version.base_version.architecture.endswith("ForCausalLM"):
        return "causal_lm"
    return "encoder"


def suite_misfit(suite: EvaluationSuite, version: AdapterVersion) -> str | None:
    """Why the suite cannot run on this adapter version, or None when it can."""
    needed, head = REQUIRED_HEAD[suite.task_type], version_head(version)
    if head == needed:
        return None
    architecture = version.base_version.architecture or "an unknown architecture"
    if needed == "classification":
        why = (
            f"{version.ref} has no classifier head (its base {version.base_version.ref} is {architecture}); "
            "train it with the classifier in modules_to_save"
        )
    else:
        why = (
            f"{version.ref} runs its base {version.base_version.ref} ({architecture}) as "
            f"{'a classifier' if head == 'classification' else 'an encoder without a language-model head'}"
        )
    return f"{suite.ref} is a {suite.task_type} suite, which needs a {needed.replace('_', ' ')} model; {why}"


def suite_check_fits(suite: EvaluationSuite, version: AdapterVersion) -> None:
    misfit = suite_misfit(suite, version)
    if misfit:
        raise RegistryError("suite_incompatible", misfit, status_code=422)


def _validate_rows(data: bytes, task_type: str) -> int:
    if len(data) > MAX_SUITE_BYTES:
        raise InvalidArtifact("suite_too_large", f"the suite is {len(data)} bytes; at most {MAX_SUITE_BYTES}")
    try:
        lines = [line for line in data.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise InvalidArtifact("suite_invalid", "the suite is not UTF-8 text (JSON Lines)") from None
    if not lines or len(lines) > MAX_EXAMPLES:
        raise InvalidArtifact("suite_invalid", f"a suite holds 1 to {MAX_EXAMPLES} examples, one JSON object per line")
    required = REQUIRED_KEYS[task_type]
    for number, line in enumerate(lines, start=1):
        # Depth, NaN and overlong numbers are refused with the shared codes (json_too_deep, ...).
        row = load_json(line, "suite", codes=SUITE_JSON_CODES, prefix=f"line {number}")
        for key, kind in required.items():
            if not isinstance(row, dict) or not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
                raise InvalidArtifact(
                    "suite_invalid", f"line {number} needs {key!r} ({kind.__name__}) for a {task_type} suite"
                )
    return len(lines)


def evaluation_suite_register(*, name: str, task_type: str, file: IncomingFile, user) -> tuple[EvaluationSuite, bool]:
    namespace, short_name = parse_name(name)
    if user is not None:  # None: the registry itself (the demo seed)
        roles.require_push(user, namespace)
    if task_type not in REQUIRED_KEYS:
        raise InvalidArtifact("suite_task_type_invalid", f"task_type must be one of {', '.join(REQUIRED_KEYS)}")
    count = _validate_rows(file.temp_path.read_bytes(), task_type)
    existing = EvaluationSuite.objects.filter(namespace=namespace, name=short_name, digest=file.sha256).first()
    if existing:
        return existing, False
    get_blob_store().put_file(file.sha256, file.temp_path)
    with transaction.atomic():
        Blob.objects.get_or_create(sha256=file.sha256, defaults={"size": file.size})
        number = (
            EvaluationSuite.objects.filter(namespace=namespace, name=short_name).aggregate(n=Max("number"))["n"] or 0
        ) + 1
        suite = EvaluationSuite.objects.create(
            namespace=namespace,
            name=short_name,
            number=number,
            digest=file.sha256,
            task_type=task_type,
            blob_id=file.sha256,
            example_count=count,
            created_by=user,
        )
        audit_record(
            type="suite.register",
            **audit_subject(suite),
            after={"ref": suite.ref, "task_type": task_type, "examples": count, "digest": file.sha256},
        )
    return suite, True


def evaluation_suite_get(ref: str) -> EvaluationSuite:
    try:
        return resolve_ref(EvaluationSuite.objects.all(), ref, kind="suite")
    except NotFound:
        raise NotFound("suite_not_found", f"no evaluation suite matches {ref!r}") from None


def evaluation_suite_attach(*, suite: EvaluationSuite, adapter_name: str) -> SuiteAttachment:
    namespace, short_name = parse_name(adapter_name)
    adapter = Adapter.objects.filter(namespace=namespace, name=short_name).first()
    if adapter is None:
        raise NotFound("adapter_not_found", f"no adapter is named {adapter_name!r}; push a version first")
    # Every live version of the name is checked: new versions usually share their base and head.
    versions = (
        AdapterVersion.objects.filter(adapter=adapter)
        .exclude(status=Status.REJECTED)
        .select_related("adapter", "base_version__base_model")
    )
    for version in versions.order_by("-number"):
        suite_check_fits(suite, version)
    with transaction.atomic():
        attachment, created = SuiteAttachment.objects.get_or_create(adapter=adapter, suite=suite)
        if created:
            audit_record(
                type="suite.attach", **audit_subject(adapter), after={"suite": suite.ref, "adapter": adapter.full_name}
            )
    return attachment
