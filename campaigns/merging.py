"""What a merge of duplicate customers does with messages and coupons: they move.

A campaign message both records were sent stays with the merged-away record (a
customer has one message per campaign and channel): it is the proof of what went
to that address.
"""

from campaigns.models import Coupon, Delivery
from customers.merging import Relation, merge_relations_register

merge_relations_register(
    Relation(Delivery, unique_with=("campaign", "channel"), on_clash="keep"),
    Relation(Coupon),
)
