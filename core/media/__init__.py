"""Shared media service: photo checking and processing, and the store uploaded files live in.

Mini-apps use it through this interface only::

    from core.media import PhotoRejected, ProcessedPhoto, process_photo, MediaStore, media_store

``process_photo`` is synchronous and CPU-bound: call it with ``starlette.concurrency.run_in_threadpool``.
``with all_or_nothing(store) as files:`` writes files and commits their rows together (a failure
deletes the files written). ``app.state.media`` is the host's store; each mini-app serves its own files through its own routes.
"""

from core.media.photos import MAX_PIXELS, PhotoRejected, ProcessedPhoto, process_photo
from core.media.store import (
    FileBatch,
    LocalMediaStore,
    MediaStore,
    all_or_nothing,
    media_store,
)

__all__ = [
    "MAX_PIXELS", "FileBatch", "LocalMediaStore", "all_or_nothing", "MediaStore", "PhotoRejected", "ProcessedPhoto", "media_store",
    "process_photo",
]
