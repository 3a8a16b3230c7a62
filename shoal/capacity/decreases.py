"""The daily budget for decreases of provisioned throughput: the rule lives
in ``shoal.model.decreases`` (UpdateTable, below this layer, applies it as
the auto scaler does); its names are here too."""

from shoal.model.decreases import (  # noqa: F401
    DAY_S,
    FREE_DECREASES,
    INTERVAL_S,
    check_decrease,
    decreases_today,
    is_decrease,
    next_decrease_at,
    spoken_time,
)
