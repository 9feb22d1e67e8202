"""Admin: read-mostly views for operators. Versions are immutable, so they are not editable here."""

from django.contrib import admin

from registry.models import Adapter, AdapterAlias, AdapterVersion, BaseModel, BaseModelVersion, Blob


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
