"""tests.canvas.test_stream_hub on the Redis Cluster (see conftest.py): a stream reader's cancel is never lost,
with the readers' cluster client (one per event loop) as with the single node's client per reader."""

from tests.canvas.test_stream_hub import (  # noqa: F401 - the tests of how a reader ends
    test_a_cancel_landing_anywhere_in_a_redis_command_is_never_lost,
    test_a_stopped_reader_ends_at_once_wherever_the_stop_lands,
)
