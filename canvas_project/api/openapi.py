"""The project's drf-spectacular AutoSchema: every `deal_id` path parameter is a UUID string.

(Routes take `<str:deal_id>` so that a malformed id reaches the deal resolver and reads as 404 in
JSON; the schema still says what a valid id looks like.)
"""

from drf_spectacular.openapi import AutoSchema


class ProjectAutoSchema(AutoSchema):
    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["name"] == "deal_id":
                parameter["schema"] = {"type": "string", "format": "uuid"}
                parameter.setdefault("description", "The deal's id; unknown or malformed ids answer 404.")
        return parameters
