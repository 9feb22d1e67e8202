"""Signatures API: attach and list signatures, re-verify a version, namespace policies, the registry's keys."""

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import selectors
from registry.api.permissions import CanPushOrReadOnly
from registry.api.schema import error_responses
from registry.errors import NotFound, RegistryError
from registry.models import RegistryKey, Signature, SigningPolicy
from registry.refs import NAMESPACE_PATTERN
from registry.roles import SCOPE_PUSH, require_admin
from registry.services.signatures import signature_attach, signing_policy_current, signing_policy_set, version_verify
from registry.signing.keys import active_key
from registry.uploads import StreamingMultiPartParser, incoming_signature, upload_scope


class SignatureSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    bundle_url = serializers.SerializerMethodField(help_text="the raw bundle (model.sig), for offline verification")

    class Meta:
        model = Signature
        fields = [
            "id",
            "is_registry",
            "method",
            "result",
            "code",
            "reason",
            "trusted",
            "signer_identity",
            "signer_issuer",
            "signer_claims",
            "certificate_fingerprint",
            "certificate_subject",
            "certificate_not_before",
            "certificate_not_after",
            "rekor_log_id",
            "rekor_log_index",
            "rekor_integrated_time",
            "key_id",
            "key_fingerprint",
            "trusted_root_id",
            "policy_version",
            "bundle_sha256",
            "bundle_url",
            "statement",
            "verified_at",
            "created_at",
            "created_by",
        ]

    def get_bundle_url(self, signature) -> str:
        return reverse(
            "api-adapter-signature-bundle", kwargs={"ref": str(signature.version_id), "signature_id": signature.id}
        )


class SignatureAttachSerializer(serializers.Serializer):
    signature = serializers.FileField(help_text="An OpenSSF model-signing v1.0 bundle (model.sig) over this version")


class VerificationSerializer(serializers.Serializer):
    signature = serializers.UUIDField(source="signature_id", allow_null=True)
    is_registry = serializers.SerializerMethodField()
    method = serializers.CharField()
    result = serializers.CharField()
    code = serializers.CharField()
    reason = serializers.CharField()
    trusted = serializers.BooleanField()
    signer_identity = serializers.CharField()
    signer_issuer = serializers.CharField()
    policy_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    def get_is_registry(self, row) -> bool:
        return bool(row.signature and row.signature.is_registry)


class VersionVerificationSerializer(serializers.Serializer):
    ref = serializers.CharField()
    digest = serializers.CharField()
    satisfies_policy = serializers.BooleanField(help_text="every signature verifies and the policy's demands are met")
    require_signature = serializers.BooleanField()
    policy_version = serializers.IntegerField()
    files_intact = serializers.BooleanField(help_text="every stored blob still hashes to its recorded digest")
    code = serializers.CharField(help_text="the first failure's code, empty when it passed")
    reason = serializers.CharField()
    verifications = VerificationSerializer(many=True)


class PolicyHistorySerializer(serializers.Serializer):
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    reason = serializers.CharField()


class SigningPolicyResponseSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    version = serializers.IntegerField(help_text="0: the default policy, never set")
    created_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    policy = serializers.JSONField()
    history = PolicyHistorySerializer(many=True)


class RegistryKeySerializer(serializers.ModelSerializer):
    public_key_pem = serializers.CharField()

    class Meta:
        model = RegistryKey
        fields = ["key_id", "algorithm", "public_key_pem", "created_at", "retired_at"]


class AdapterSignaturesView(APIView):
    """Signatures of an adapter version; POST attaches another party's signature."""

    permission_classes = [CanPushOrReadOnly]
    parser_classes = [StreamingMultiPartParser]
    required_scope = SCOPE_PUSH

    @extend_schema(responses=SignatureSerializer(many=True))
    def get(self, request, ref):
        version = selectors.adapter_version_get(ref)
        signatures = version.signatures.select_related("created_by")
        return Response(SignatureSerializer(signatures, many=True).data)

    @extend_schema(
        request={"multipart/form-data": SignatureAttachSerializer},
        responses={201: SignatureSerializer, 200: SignatureSerializer, **error_responses(422)},
    )
    def post(self, request, ref):
        """Verify a bundle against the version's files and namespace policy, then keep it. Refused: 422."""
        version = selectors.adapter_version_get(ref)
        with upload_scope(request):
            raw = incoming_signature(request)
            if raw is None:
                raise RegistryError(
                    "signature_missing", "send the bundle (model.sig) in the multipart field 'signature'"
                )
            signature, created = signature_attach(version=version, raw=raw, user=request.user)
        return Response(
            SignatureSerializer(signature).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class AdapterSignatureBundleView(APIView):
    """The raw bundle of one signature, byte for byte as it was verified."""

    @extend_schema(responses={(200, "application/json"): {"type": "object"}})
    def get(self, request, ref, signature_id):
        version = selectors.adapter_version_get(ref)
        signature = version.signatures.filter(id=signature_id).first()
        if signature is None:
            raise NotFound("signature_not_found", f"{version.ref} has no signature {signature_id}")
        response = HttpResponse(bytes(signature.bundle), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{signature.bundle_sha256[:12]}.sig"'
        return response


class AdapterVerifyView(APIView):
    """Re-verify every signature of a version from storage (blobs re-hashed) against today's policy."""

    @extend_schema(request=None, responses=VersionVerificationSerializer)
    def post(self, request, ref):
        version = selectors.adapter_version_get(ref)
        result = version_verify(version, user=request.user)
        payload = {"ref": version.ref, "digest": version.digest, **result.__dict__}
        return Response(VersionVerificationSerializer(payload).data)


def _namespace(namespace: str) -> str:
    if not NAMESPACE_PATTERN.match(namespace):
        raise RegistryError("namespace_invalid", f"{namespace[:80]!r} is not a namespace (letters, digits, . _ -)")
    return namespace


def _policy_payload(namespace: str) -> dict:
    current = signing_policy_current(namespace)
    history = SigningPolicy.objects.filter(namespace=namespace).select_related("created_by").order_by("-version")
    return {
        "namespace": namespace,
        "version": current.version,
        "created_at": current.row.created_at if current.row else None,
        "created_by": current.row.created_by.username if current.row and current.row.created_by else None,
        "policy": current.policy.document(),
        "history": history,
    }


class SigningPolicyView(APIView):
    """A namespace's signing policy. Anyone signed in reads it; its admins replace it (a new version each time)."""

    @extend_schema(responses=SigningPolicyResponseSerializer)
    def get(self, request, namespace):
        return Response(SigningPolicyResponseSerializer(_policy_payload(_namespace(namespace))).data)

    @extend_schema(
        request={"application/json": {"type": "object", "description": "the policy document (README, Signatures)"}},
        responses=SigningPolicyResponseSerializer,
    )
    def put(self, request, namespace):
        require_admin(request.user, _namespace(namespace), f"changing the signing policy of {namespace}")
        signing_policy_set(namespace=namespace, document=request.data, user=request.user)
        return Response(SigningPolicyResponseSerializer(_policy_payload(namespace)).data)


class RegistryKeysView(APIView):
    """The registry's public keys, current and retired, for offline verification. No authentication."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses=RegistryKeySerializer(many=True), auth=[])
    def get(self, request):
        active_key()  # the key exists from the registry's first start; make sure it is listed
        return Response(RegistryKeySerializer(RegistryKey.objects.all(), many=True).data)
