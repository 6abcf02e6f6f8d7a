"""A JSON parser that refuses text PostgreSQL cannot store.

NUL characters and lone UTF-16 surrogates are legal in JSON but not in a PostgreSQL text column (and
a surrogate cannot even be encoded back to UTF-8), so they are refused at the door as a 422 instead of
failing deep inside a write as a 500.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from canvas_project.api.validation import first_unstorable_text


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        problem = first_unstorable_text(data)
        if problem is not None:
            raise ParseError(problem)
        return data
