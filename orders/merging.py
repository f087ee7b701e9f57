"""What a merge of duplicate customers does with orders and carts: they move."""

from customers.merging import Relation, merge_relations_register
from orders.models import Cart, Order

merge_relations_register(Relation(Order), Relation(Cart))
