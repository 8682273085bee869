"""The dispatcher API: each view parses its input, calls one engine function, answers."""

from django.conf import settings
from django.db import DatabaseError, connection
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from quotas import selectors, services
from quotas.api import serializers as s
from quotas.api.auth import HasAdminKey, ReadAnyWriteAdmin
from quotas.models import AgentAllowance, Job, ModelQuota, RepoLimit

ERRORS = {
    400: OpenApiResponse(description="Malformed input; the body names each field to fix."),
    401: OpenApiResponse(description="Missing or wrong API key."),
    403: OpenApiResponse(description="The key's role may not do this."),
    404: OpenApiResponse(description="No allowance for this agent (and no '*' default)."),
}


def parsed(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: OpenApiResponse(description='{"status": "ok"}'), 503: OpenApiResponse()},
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
        result = services.check(**parsed(s.CheckInput, request.data))
        return Response(s.QuotaCheckResultSerializer(result).data)


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
    )
    def post(self, request):
        outcome = services.dispatch(**parsed(s.DispatchInput, request.data))
        result = outcome.result
        body = s.DispatchResultSerializer(
            {
                **result.as_dict(),
                "job_id": outcome.job.job_id if outcome.job else None,
                "duplicate": outcome.duplicate,
            }
        ).data
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
            409: OpenApiResponse(description="A different final event for a job that ended."),
            **ERRORS,
        },
    )
    def post(self, request):
        outcome = services.record_usage(**parsed(s.UsageReportInput, request.data))
        return Response(s.UsageReportResultSerializer(outcome).data)


class RepoEventView(APIView):
    @extend_schema(request=s.RepoEventInput, responses={201: s.RepoUsageSerializer, **ERRORS})
    def post(self, request):
        record = services.record_repo_event(**parsed(s.RepoEventInput, request.data))
        return Response(s.RepoUsageSerializer(record).data, status=status.HTTP_201_CREATED)


class AgentUsageView(APIView):
    @extend_schema(responses={200: s.UsageRecordSerializer, **ERRORS})
    def get(self, request, agent_id):
        return Response(s.UsageRecordSerializer(selectors.usage_record(agent_id=agent_id)).data)


class ModelUsageView(APIView):
    @extend_schema(responses={200: s.ModelUsageSerializer, 400: ERRORS[400], 401: ERRORS[401]})
    def get(self, request, model):
        return Response(s.ModelUsageSerializer(selectors.model_usage_record(model=model)).data)


class RepoUsageView(APIView):
    @extend_schema(responses={200: s.RepoUsageSerializer, 400: ERRORS[400], 401: ERRORS[401]})
    def get(self, request, repo):
        return Response(s.RepoUsageSerializer(selectors.repo_usage_record(repo=repo)).data)


class AgentResetView(APIView):
    permission_classes = [HasAdminKey]

    @extend_schema(request=None, responses={200: s.UsageRecordSerializer, **ERRORS})
    def post(self, request, agent_id):
        services.reset_usage(agent_id=agent_id)
        return Response(s.UsageRecordSerializer(selectors.usage_record(agent_id=agent_id)).data)


class JobPagination(CursorPagination):
    # A cursor, not page numbers: no COUNT(*) over a ledger of millions of jobs.
    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class JobListView(ListAPIView):
    serializer_class = s.JobSerializer
    pagination_class = JobPagination

    @extend_schema(parameters=[s.JobFilter])
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


class LimitViewSet(viewsets.ModelViewSet):
    permission_classes = [ReadAnyWriteAdmin]
    pagination_class = None


class AllowanceViewSet(LimitViewSet):
    queryset = AgentAllowance.objects.all()
    serializer_class = s.AllowanceSerializer
    lookup_field = "agent_id"
    lookup_value_regex = r"[A-Za-z0-9._:*-]+"


class ModelQuotaViewSet(LimitViewSet):
    queryset = ModelQuota.objects.all()
    serializer_class = s.ModelQuotaSerializer
    lookup_field = "model"
    # Non-greedy, so that an optional trailing slash is not taken into the model id.
    lookup_value_regex = r"[A-Za-z0-9._:/-]+?"


class RepoLimitViewSet(LimitViewSet):
    queryset = RepoLimit.objects.all()
    serializer_class = s.RepoLimitSerializer
    lookup_field = "repo"
    lookup_value_regex = r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+?"
