"""Local bytes: remote object versions in memory over a persistent disk tier, and staged writes.

``cache`` stores bytes and decides no semantics; it imports nothing of the
project. The filesystem hands each read a ``Fetch`` (``fetch(offset,
length)`` for one object version) and gets exactly the bytes it asked for.

Modules, one concept each:

* ``keys``       ObjectKey / BlockKey and block arithmetic
* ``config``     CacheConfig
* ``stats``      CacheStatistics and the shared counters
* ``memory``     the memory tier (cachetools LRU bounded by bytes)
* ``blockfile``  one block file: format, checksum, atomic write
* ``private_dir`` claiming a 0700, locked directory; opening it off the loop
* ``diskindex``  the SQLite index of the disk tier
* ``disk``       the disk tier: LRU mirror, writer task, budget
* ``flights``    single-flight ranged fetches
* ``readahead``  per-handle read pattern and the read-ahead window
* ``blocks``     BlockCache, which ties them together, and open_block_cache

and, for files being written (durable before ``close()`` returns, uploaded later
by the filesystem):

* ``staging``    StagingStore: staged copies filled lazily from their remote base,
                 with a crash-safe journal (``stagedfile``, ``staginglayout``,
                 ``stagingjournal``, ``stagingdata``, ``blockmap`` are its parts)
* ``mtimes``     MtimeStore: modification times set through the mount, per version

Exceptions raised by this package (the fetch's own exceptions pass through)::

    Exception
    ├── IncompleteFetch        the source returned less than the object's size
    ├── CacheDirectoryError    the disk directory is foreign or in use
    └── trio.ClosedResourceError   read on (or waiting in) a closed cache
"""

from .blocks import BlockCache, open_block_cache
from .config import CacheConfig
from .flights import FetchMany, IncompleteFetch
from .keys import BlockKey, Fetch, ObjectKey
from .mtimes import MtimeStore
from .private_dir import CacheDirectoryError
from .readahead import ReadStream
from .staging import (
    BaseFetch,
    ChangeWatch,
    ContentChanged,
    StagedFile,
    StagingStore,
    open_staging_store,
)
from .stats import CacheStatistics

__all__ = [
    "BaseFetch",
    "BlockCache",
    "BlockKey",
    "CacheConfig",
    "ChangeWatch",
    "CacheDirectoryError",
    "CacheStatistics",
    "ContentChanged",
    "Fetch",
    "FetchMany",
    "IncompleteFetch",
    "MtimeStore",
    "ObjectKey",
    "ReadStream",
    "StagedFile",
    "StagingStore",
    "open_block_cache",
    "open_staging_store",
]
