from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from django_bgjobs.models import Job


class SignupSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, style={"input_type": "password"})

    class Meta:
        model = get_user_model()
        fields = ["username", "email", "password"]
        extra_kwargs = {"email": {"required": True, "allow_blank": False}}

    def validate_email(self, value: str) -> str:
        if get_user_model().objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("A user with this email already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        user = get_user_model()(username=attrs["username"], email=attrs["email"])
        try:
            validate_password(attrs["password"], user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs

    def create(self, validated_data: dict):
        return get_user_model().objects.create_user(**validated_data)


class JobSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "name", "queue", "status"]


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "queue",
            "status",
            "attempts",
            "max_attempts",
            "result",
            "error",
            "progress_done",
            "progress_total",
            "progress_message",
            "created_at",
            "started_at",
            "finished_at",
            "run_after",
        ]
        read_only_fields = fields


class FlakySerializer(serializers.Serializer):
    fail_times = serializers.IntegerField(min_value=0, max_value=10, default=2)
