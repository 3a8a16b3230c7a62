"""Storage: a narrow engine interface over ordered byte keys, implemented with LMDB.

The rest of Shoal imports only what is re-exported here and never learns which
engine is in use (see ``engine`` for the contract every engine keeps).
"""

from shoal.storage.datadir import DataDirError, open_data_dir
from shoal.storage.engine import SPACES, Engine, ReadTxn, WriteTxn
from shoal.storage.lmdb_engine import LmdbEngine

__all__ = ["SPACES", "DataDirError", "Engine", "LmdbEngine", "ReadTxn", "WriteTxn", "open_data_dir"]
