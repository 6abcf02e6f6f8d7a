"""tests.canvas.test_memo_locks on the Redis Cluster (see conftest.py). The two tests of runs meeting a lock
read the runs' streams through a module-scoped service process, started before this folder's fixture points
Redis at the cluster, so they are not re-run here (runs' streams on the cluster: test_events_sse). Named to
run after the purge modules: runs leave LangGraph threads that a purge of mode all would count."""

from tests.canvas.test_memo_locks import *  # noqa: F403

del test_a_generate_run_leaves_the_locked_section_as_it_is_reports_it_and_writes_the_rest  # noqa: F821
del test_a_regenerate_run_of_the_locked_section_leaves_it_as_it_is_and_reports_it  # noqa: F821
