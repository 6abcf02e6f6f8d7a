"""Request and response serializers of the canvas app."""

from rest_framework import serializers


class TemplateSectionOutput(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    order = serializers.IntegerField()
    required = serializers.BooleanField()
    retrieval_query = serializers.CharField()
    drafter = serializers.CharField()


class MemoTemplateOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    sections = TemplateSectionOutput(many=True)
