"""The namespace type-ahead: which adapter namespaces start with what someone has typed."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.api.schema import TextField
from registry.api.serializers import ListFilterSerializer, QueryIntegerField
from registry.namespaces import SUGGESTIONS_LIMIT, SUGGESTIONS_MAX, namespace_suggestions


class NamespaceFilterSerializer(ListFilterSerializer):
    paginated = False

    prefix = TextField(required=False, allow_blank=True, max_length=64, help_text="what the namespace starts with")
    limit = QueryIntegerField(required=False, min_value=1, max_value=SUGGESTIONS_MAX, default=SUGGESTIONS_LIMIT)


class NamespaceListSerializer(serializers.Serializer):
    results = serializers.ListField(child=serializers.CharField(), help_text="namespaces in order, at most `limit`")


class NamespaceListView(APIView):
    """Adapter namespaces starting with `prefix`, in order, at most `limit` (default 20, up to 100).

    A skip scan of the (namespace, name) index: `limit` index probes however many adapter names
    exist, so it answers as fast at a million names as at ten. Not paginated: ask with a longer
    prefix for more."""

    @extend_schema(parameters=[NamespaceFilterSerializer], responses=NamespaceListSerializer)
    def get(self, request):
        filters = NamespaceFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        found = namespace_suggestions(filters.validated_data.get("prefix", ""), filters.validated_data["limit"])
        return Response({"results": found})
