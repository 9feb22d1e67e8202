"""Admin: read-mostly views for operators. Versions are immutable, so they are not editable here."""

import re

from django import forms
from django.contrib import admin

from registry.models import (
    Adapter,
    AdapterAlias,
    AdapterVersion,
    BaseModel,
    BaseModelVersion,
    Blob,
    NamespaceRole,
    RegistryKey,
    ScopedToken,
    Signature,
    SignatureVerification,
    SigningPolicy,
)
from registry.refs import NAMESPACE_SEGMENT
from registry.services.signatures import signing_policy_current, signing_policy_set
from registry.signing.policy import PolicyInvalid, parse_policy
from registry.webhooks import admin as webhooks_admin  # noqa: F401  (registers the webhook admin)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BaseModel, Adapter)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ("namespace", "name", "created_at", "created_by")
    search_fields = ("namespace", "name")
    fields = ("namespace", "name", "description")
    readonly_fields = ("namespace", "name")

    def has_add_permission(self, request):
        return False


@admin.register(BaseModelVersion)
class BaseModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "status", "architecture", "parameter_count", "created_at")
    list_filter = ("status", "architecture")
    search_fields = ("base_model__namespace", "base_model__name", "digest")
    list_select_related = ("base_model",)


@admin.register(AdapterVersion)
class AdapterVersionAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "status", "peft_type", "r", "base_version", "created_at")
    list_filter = ("status", "peft_type")
    search_fields = ("adapter__namespace", "adapter__name", "digest")
    list_select_related = ("adapter", "base_version__base_model")


@admin.register(Blob)
class BlobAdmin(ReadOnlyAdmin):
    list_display = ("sha256", "size", "created_at")
    search_fields = ("sha256",)


@admin.register(AdapterAlias)
class AdapterAliasAdmin(ReadOnlyAdmin):
    list_display = ("adapter", "name", "version", "updated_at")
    list_select_related = ("adapter", "version__adapter")


# --- Signatures ------------------------------------------------------------------------------


class SigningPolicyForm(forms.ModelForm):
    """A new version of a namespace's policy, checked by the same parser as the API's PUT."""

    document = forms.JSONField(widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "spellcheck": "false"}))

    class Meta:
        model = SigningPolicy
        fields = ("namespace", "document", "reason")

    def clean_namespace(self):
        namespace = self.cleaned_data["namespace"]
        if not re.fullmatch(NAMESPACE_SEGMENT, namespace):
            raise forms.ValidationError("not a namespace (letters, digits, . _ -; at most 64 characters)")
        return namespace

    def clean_document(self):
        document = self.cleaned_data["document"]
        try:
            parse_policy(document)
        except PolicyInvalid as exc:
            raise forms.ValidationError(f"{exc.field}: {exc.message}") from None
        return document


@admin.register(SigningPolicy)
class SigningPolicyAdmin(admin.ModelAdmin):
    """Policies are versioned, never edited: "add" stores the next version through the service."""

    form = SigningPolicyForm
    list_display = ("namespace", "version", "require_signature", "created_at", "created_by")
    list_filter = ("namespace",)
    search_fields = ("namespace",)
    list_select_related = ("created_by",)

    @admin.display(boolean=True)
    def require_signature(self, obj) -> bool:
        return bool(obj.document.get("require_signature"))

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_changeform_initial_data(self, request):
        """?namespace=acme starts from acme's current document, so a change is an edit of what holds now."""
        initial = super().get_changeform_initial_data(request)
        namespace = initial.get("namespace", "")
        if namespace and re.fullmatch(NAMESPACE_SEGMENT, namespace):
            initial["document"] = signing_policy_current(namespace).policy.document()
        return initial

    def save_model(self, request, obj, form, change):
        # The document was parsed in the form; the service numbers the version under a lock.
        saved = signing_policy_set(
            namespace=form.cleaned_data["namespace"],
            document=form.cleaned_data["document"],
            user=request.user,
            reason=form.cleaned_data.get("reason", ""),
        )
        # The admin logs and links the object it handed in: make it the stored row.
        obj.pk, obj.version, obj.document, obj.created_at, obj.created_by = (
            saved.pk, saved.version, saved.document, saved.created_at, saved.created_by,
        )  # fmt: skip
        obj._state.adding = False


@admin.register(Signature)
class SignatureAdmin(ReadOnlyAdmin):
    list_display = ("version", "is_registry", "method", "signer_identity", "result", "trusted", "policy_version",
                    "verified_at")  # fmt: skip
    list_filter = ("result", "method", "is_registry", "trusted")
    search_fields = ("version__adapter__namespace", "version__adapter__name", "signer_identity", "key_id")
    list_select_related = ("version__adapter",)


@admin.register(SignatureVerification)
class SignatureVerificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "adapter_name", "trigger", "result", "code", "method", "signer_identity",
                    "policy_version")  # fmt: skip
    list_filter = ("result", "trigger", "method", "code")
    search_fields = ("adapter_name", "digest", "signer_identity", "key_id")
    date_hierarchy = "created_at"


@admin.register(RegistryKey)
class RegistryKeyAdmin(ReadOnlyAdmin):
    list_display = ("key_id", "algorithm", "created_at", "retired_at")


@admin.register(NamespaceRole)
class NamespaceRoleAdmin(admin.ModelAdmin):
    """Grant and revoke roles on namespaces; each is an audit event (role.grant / role.revoke, by signals).
    A grant is never edited: revoke it and grant another, so the trail shows both."""

    list_display = ("namespace", "role", "user", "group", "created_at", "created_by")
    list_filter = ("role", "namespace")
    search_fields = ("namespace", "user__username", "group__name")
    list_select_related = ("user", "group", "created_by")
    fields = ("namespace", "role", "user", "group")
    raw_id_fields = ("user",)

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ScopedToken)
class ScopedTokenAdmin(ReadOnlyAdmin):
    """Scoped CI tokens, never their keys (only the SHA-256 is stored); revoke is the one change."""

    list_display = ("name", "user", "scopes", "namespaces", "key_prefix", "created_at", "last_used_at", "expires_at",
                    "revoked_at")  # fmt: skip
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "key_prefix")
    list_select_related = ("user",)
    exclude = ("key_hash",)
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        from registry.services.access import scoped_token_revoke

        for token in queryset:
            scoped_token_revoke(token=token, by=request.user)
