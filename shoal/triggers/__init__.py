"""Stream triggers: Shoal's stand-in for a Lambda event-source mapping.

A trigger delivers one table stream, in order per partition key and at least
once, to an HTTP endpoint as the JSON event Lambda receives from DynamoDB
Streams (``{"Records": [...]}``, each record as GetRecords returns it plus
``eventSourceARN``).  Pieces:

* ``shoal.triggers.store``: configuration, checkpoint, retry state and lease,
  all in the ``meta`` space under ``triggers/``, and the pure decisions made
  on them (which batch is next, what a delivery outcome changes).
* ``shoal.triggers.runner``: the background job of every worker process and
  its one delivery thread; the job decides, the thread does the HTTP POST.
* ``shoal.triggers.cli``: ``shoal triggers add | list | show | remove |
  enable | disable``.
"""

from shoal.triggers.store import TriggerError, TriggerSettings, add_trigger, list_triggers, remove_trigger
from shoal.triggers.runner import TriggerRunner

__all__ = ["TriggerError", "TriggerRunner", "TriggerSettings", "add_trigger", "list_triggers",
           "remove_trigger"]
