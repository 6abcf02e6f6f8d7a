"""WhiteNoise as middleware that Django can run natively under ASGI as well as WSGI.

WhiteNoise's middleware is sync-only: under ASGI, Django then runs the whole rest of the stack through
async_to_sync on a request thread, for every request, the event streams included. This subclass is both: the
lookup of a static path is an in-memory dict (a disk lookup only with WHITENOISE_AUTOREFRESH, in development),
and serving a file, rare under ASGI (the proxy sends only the streams there), runs on a worker thread.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, **kwargs) -> None:
        super().__init__(get_response, **kwargs)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
