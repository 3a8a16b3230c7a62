"""Storage: a narrow engine interface over ordered byte keys, implemented with
LMDB (the default, in the data directory) and PostgreSQL (``--storage``).

The rest of Shoal imports only what is re-exported here and never learns which
engine is in use (see ``engine`` for the contract every engine keeps).  The
PostgreSQL engine is imported only when asked for (``open_storage``), so
that a server on LMDB never loads psycopg.
"""

from shoal.storage.datadir import DataDirError, open_data_dir, open_storage
from shoal.storage.engine import SPACES, Engine, ReadTxn, WriteTxn
from shoal.storage.lmdb_engine import LmdbEngine

__all__ = ["SPACES", "DataDirError", "Engine", "LmdbEngine", "ReadTxn", "WriteTxn", "open_data_dir",
           "open_storage"]
