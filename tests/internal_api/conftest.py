"""The canvas fixtures (a written memo) for the internal contract tests, and a chat thread of the cast's deal."""

import pytest

from internal_api.models import ChatThread
from tests.canvas.conftest import memo_text, written  # noqa: F401


@pytest.fixture
def thread(cast):
    """A chat thread of the editor on the cast's deal: the X-Thread-Id of the contract's calls."""
    return ChatThread.objects.create(deal=cast.deal, user=cast.users["editor"], agent_id="strategy")
