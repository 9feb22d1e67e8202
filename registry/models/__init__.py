"""The registry's models, one module per domain; import them from here.

- catalog: blobs, base models, adapters, their versions, files and aliases
- work: workers, jobs, checks, evaluation suites
- signing: signing policies, signatures, verifications, the registry's keys
- audit: the append-only audit chain and its head
- audit_export: requested exports of the chain (their state and ZIP)
- promotions: alias moves, promotion policies, requests and approvals
- webhooks: receivers of events, their deliveries and each delivery's attempts
- access: roles granted on namespaces, and API tokens scoped for CI
- residency: serving workers, their telemetry, residency pins and the planner's plans
"""

from registry.models.access import NamespaceRole, ScopedToken
from registry.models.audit import AuditChainHead, AuditEvent
from registry.models.audit_export import AuditExport
from registry.models.catalog import (
    Adapter,
    AdapterAlias,
    AdapterFile,
    AdapterVersion,
    BaseAdapterCount,
    BaseModel,
    BaseModelFile,
    BaseModelVersion,
    Blob,
    Repository,
    Status,
    Version,
    VersionFile,
)
from registry.models.promotions import AliasMove, PromotionApproval, PromotionPolicy, PromotionRequest
from registry.models.residency import (
    ResidencyPin,
    ResidencyPlan,
    ServingWorker,
    TelemetryWindow,
    WorkerDesiredState,
)
from registry.models.signing import RegistryKey, Signature, SignatureVerification, SigningMethod, SigningPolicy
from registry.models.webhooks import Webhook, WebhookAttempt, WebhookDelivery
from registry.models.work import Check, EvaluationSuite, Job, SuiteAttachment, Worker

__all__ = [
    "Adapter",
    "AdapterAlias",
    "AdapterFile",
    "AdapterVersion",
    "BaseAdapterCount",
    "AliasMove",
    "AuditChainHead",
    "AuditEvent",
    "AuditExport",
    "BaseModel",
    "BaseModelFile",
    "BaseModelVersion",
    "Blob",
    "Check",
    "EvaluationSuite",
    "Job",
    "NamespaceRole",
    "PromotionApproval",
    "PromotionPolicy",
    "PromotionRequest",
    "RegistryKey",
    "Repository",
    "ResidencyPin",
    "ResidencyPlan",
    "ScopedToken",
    "ServingWorker",
    "Signature",
    "SignatureVerification",
    "SigningMethod",
    "SigningPolicy",
    "Status",
    "SuiteAttachment",
    "TelemetryWindow",
    "Version",
    "VersionFile",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "Worker",
    "WorkerDesiredState",
]
