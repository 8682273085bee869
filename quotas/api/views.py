"""The dispatcher API: each view parses its input, calls one engine function, answers."""

from functools import cache

from django.conf import settings
from django.db import DatabaseError, connection
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers as drf_serializers
from rest_framework import status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from quotas import changelog, housekeeping, selectors, services
from quotas.api import serializers as s
from quotas.api.auth import HasAdminKey, ReadAnyWriteAdmin
from quotas.api.logging import note
from quotas.changelog import Actor
from quotas.models import Job

ERRORS = {
    400: OpenApiResponse(s.FieldErrors, "Malformed input; the body names each field to fix."),
    401: OpenApiResponse(s.ErrorSerializer, "Missing or wrong API key."),
    403: OpenApiResponse(s.ErrorSerializer, "The key's role may not do this."),
    404: OpenApiResponse(s.ErrorSerializer, "No allowance for this agent (and no '*' default)."),
}
NOT_FOUND = OpenApiResponse(s.ErrorSerializer, "Nothing with this id.")
HEALTH = inline_serializer("Health", {"status": drf_serializers.CharField()})


@cache
def _shared(serializer_class) -> drf_serializers.Serializer:
    return serializer_class()


def parsed(serializer_class, data) -> dict:
    """``serializer_class(data=data)``'s validated data, or its ValidationError (a 400).

    Each new serializer deep-copies and binds its declared fields, which costs more than
    validating these inputs (README, Performance). Validating keeps no state on the
    serializer, so one unbound instance per class validates every request, as a nested
    serializer field does for every parent it is part of.
    """
    try:
        return _shared(serializer_class).run_validation(data)
    except drf_serializers.ValidationError:
        # Bad input is rare: a serializer of its own words the errors exactly as is_valid
        # does (a body of null, say, becomes {"non_field_errors": ["No data provided"]}).
        serializer_class(data=data).is_valid(raise_exception=True)
        raise


def rendered(serializer_class, instance) -> dict:
    """``serializer_class(instance).data``, from the same shared instance as ``parsed``."""
    return _shared(serializer_class).to_representation(instance)


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: HEALTH, 503: OpenApiResponse(HEALTH, "The database does not answer.")},
        auth=[],
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            return Response({"status": "unavailable"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ok"})


class CheckView(APIView):
    @extend_schema(request=s.CheckInput, responses={200: s.QuotaCheckResultSerializer, **ERRORS})
    def post(self, request):
        data = parsed(s.CheckInput, request.data)
        result = services.check(**data)
        note(request, agent=data["agent_id"], decision=result.reason_code or "allowed")
        # The result's fields are already the answer's plain JSON values; the serializer
        # describes them for the schema without being run on the hot path.
        return Response(result.as_dict())


class DispatchView(APIView):
    @extend_schema(
        request=s.DispatchInput,
        responses={
            201: s.DispatchResultSerializer,
            200: OpenApiResponse(s.DispatchResultSerializer, "The same job_id again."),
            403: OpenApiResponse(s.DispatchResultSerializer, "Refused; waiting will not help."),
            429: OpenApiResponse(s.DispatchResultSerializer, "Refused; retry after Retry-After."),
            400: ERRORS[400],
            401: ERRORS[401],
            404: ERRORS[404],
        },
        parameters=[
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait before dispatching again.",
            )
        ],
    )
    def post(self, request):
        data = parsed(s.DispatchInput, request.data)
        outcome = services.dispatch(**data)
        result = outcome.result
        decision = "duplicate" if outcome.duplicate else result.reason_code or "allowed"
        note(request, agent=data["agent_id"], decision=decision)
        body = {
            **result.as_dict(),
            "job_id": outcome.job.job_id if outcome.job else None,
            "duplicate": outcome.duplicate,
        }
        if result.allowed:
            return Response(body, status=status.HTTP_200_OK if outcome.duplicate else 201)
        if not result.retryable:
            return Response(body, status=status.HTTP_403_FORBIDDEN)
        retry_after = result.retry_after or settings.QUOTAS_DEFAULT_RETRY_AFTER
        return Response(
            body,
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )


class UsageReportView(APIView):
    @extend_schema(
        request=s.UsageReportInput,
        responses={
            200: s.UsageReportResultSerializer,
            409: OpenApiResponse(
                s.ErrorSerializer, "A different final event for a job that ended."
            ),
            **ERRORS,
        },
    )
    def post(self, request):
        data = parsed(s.UsageReportInput, request.data)
        outcome = services.record_usage(**data)
        decision = f"{data['event']}{' duplicate' if outcome.duplicate else ''}"
        note(request, agent=data["agent_id"], decision=decision)
        return Response(rendered(s.UsageReportResultSerializer, outcome))


class RepoEventView(APIView):
    @extend_schema(request=s.RepoEventInput, responses={201: s.RepoUsageSerializer, **ERRORS})
    def post(self, request):
        record = services.record_repo_event(**parsed(s.RepoEventInput, request.data))
        return Response(rendered(s.RepoUsageSerializer, record), status=status.HTTP_201_CREATED)


class AgentUsageView(APIView):
    @extend_schema(responses={200: s.UsageRecordSerializer, **ERRORS})
    def get(self, request, agent_id):
        record = selectors.usage_record(agent_id=agent_id)
        return Response(rendered(s.UsageRecordSerializer, record))


class ModelUsageView(APIView):
    @extend_schema(
        responses={200: s.ModelUsageSerializer, 400: ERRORS[400], 401: ERRORS[401], 404: NOT_FOUND}
    )
    def get(self, request, model):
        return Response(rendered(s.ModelUsageSerializer, selectors.model_usage_record(model=model)))


class RepoUsageView(APIView):
    @extend_schema(
        responses={200: s.RepoUsageSerializer, 400: ERRORS[400], 401: ERRORS[401], 404: NOT_FOUND}
    )
    def get(self, request, repo):
        return Response(rendered(s.RepoUsageSerializer, selectors.repo_usage_record(repo=repo)))


class AgentResetView(APIView):
    permission_classes = [HasAdminKey]

    @extend_schema(request=s.ResetInput, responses={200: s.UsageRecordSerializer, **ERRORS})
    def post(self, request, agent_id):
        reason = parsed(s.ResetInput, request.data or {})["reason"]
        actor = Actor.api_key(request.auth)
        housekeeping.reset_usage(agent_id=agent_id, actor=actor, reason=reason)
        record = selectors.usage_record(agent_id=agent_id)
        return Response(rendered(s.UsageRecordSerializer, record))


class JobPagination(CursorPagination):
    # A cursor, not page numbers: no COUNT(*) over a ledger of millions of jobs.
    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        # DRF trusts the position inside a well-formed cursor; a forged one ('p=abc') would
        # reach the database as an id and fail there with a 500.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except ValueError:
                raise NotFound(self.invalid_cursor_message) from None
        return cursor


class JobListView(ListAPIView):
    serializer_class = s.JobSerializer
    pagination_class = JobPagination

    @extend_schema(
        parameters=[s.JobFilter],
        responses={
            200: s.JobSerializer(many=True),
            400: ERRORS[400],
            401: ERRORS[401],
            404: OpenApiResponse(s.ErrorSerializer, "Not a cursor this service gave out."),
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = parsed(s.JobFilter, self.request.query_params)
        jobs = Job.objects.all()
        if filters["agent_id"]:
            jobs = jobs.filter(agent_id=filters["agent_id"])
        if filters["state"]:
            jobs = jobs.filter(state=filters["state"])
        return jobs


def limit_schema(serializer):
    """The answers every limit endpoint gives, for the OpenAPI document."""
    read = {401: ERRORS[401]}
    write = {400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403]}
    return extend_schema_view(
        list=extend_schema(responses={200: serializer(many=True), **read}),
        create=extend_schema(responses={201: serializer, **write}),
        retrieve=extend_schema(responses={200: serializer, 404: NOT_FOUND, **read}),
        update=extend_schema(responses={200: serializer, 404: NOT_FOUND, **write}),
        partial_update=extend_schema(responses={200: serializer, 404: NOT_FOUND, **write}),
        destroy=extend_schema(
            responses={204: None, 404: NOT_FOUND, 401: ERRORS[401], 403: ERRORS[403]}
        ),
    )


# The endpoints of one kind of limit. Each kind names its serializer and what its id looks like
# in a URL; the rest follows from the serializer. (No docstring: it would become every limit
# endpoint's description in the OpenAPI document.)
class LimitViewSet(viewsets.ModelViewSet):
    permission_classes = [ReadAnyWriteAdmin]
    pagination_class = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        limit_model = cls.serializer_class.Meta.model
        cls.queryset = limit_model.objects.all()
        cls.lookup_field = limit_model.id_field
        limit_schema(cls.serializer_class)(cls)

    def perform_create(self, serializer):
        with changelog.acting(Actor.api_key(self.request.auth)):
            super().perform_create(serializer)

    def perform_update(self, serializer):
        with changelog.acting(Actor.api_key(self.request.auth)):
            super().perform_update(serializer)

    def perform_destroy(self, instance):
        with changelog.acting(Actor.api_key(self.request.auth)):
            instance.delete()


class AllowanceViewSet(LimitViewSet):
    serializer_class = s.AllowanceSerializer
    lookup_value_regex = r"[A-Za-z0-9._:*-]+"


class ModelQuotaViewSet(LimitViewSet):
    serializer_class = s.ModelQuotaSerializer
    # Non-greedy, so that an optional trailing slash is not taken into the model id.
    lookup_value_regex = r"[A-Za-z0-9._:/-]+?"


class RepoLimitViewSet(LimitViewSet):
    serializer_class = s.RepoLimitSerializer
    lookup_value_regex = r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+?"
