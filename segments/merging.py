"""What a merge of duplicate customers does with metrics and segments.

Metrics are derived: the merged-away record's go, and both records are
recomputed at once (the survivor's figures now include every order it received;
an undo recomputes both again). The histories (RFM moves, segment changes) move;
a membership moves unless the survivor is already a member of the segment (then
it is removed, and restored on undo).
"""

from typing import Any

from customers.merging import (
    Relation,
    customers_merge_undone,
    customers_merged,
    merge_relations_register,
)
from segments.metrics import metrics_recompute
from segments.models import (
    CustomerMetrics,
    MetricsQueue,
    RfmSegmentMove,
    SegmentChange,
    SegmentMembership,
)

merge_relations_register(
    Relation(CustomerMetrics, action="drop"),
    Relation(MetricsQueue, action="drop"),
    Relation(RfmSegmentMove),
    Relation(SegmentChange),
    Relation(SegmentMembership, unique_with=("segment",), on_clash="remove"),
)


def metrics_after_merge(*, merge: Any, **kwargs: Any) -> None:
    """Both records' metrics recomputed in the merge's (or undo's) transaction."""
    metrics_recompute(customer_ids=[merge.survivor_id, merge.merged_id])


customers_merged.connect(metrics_after_merge, dispatch_uid="segments_merge_metrics")
customers_merge_undone.connect(
    metrics_after_merge, dispatch_uid="segments_merge_undone_metrics"
)
