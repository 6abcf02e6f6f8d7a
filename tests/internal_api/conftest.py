"""The canvas fixtures (a written memo) for the internal contract tests."""

from tests.canvas.conftest import memo_text, written  # noqa: F401
