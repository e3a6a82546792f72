"""Seed 001's shop tools over the real demo catalogue (``services.stores.shop``).

Results are JSON objects with stable field names, so a plan can feed one step's output into the
next with ``{"$ref": "step_1.item_ids"}``. Lookups are ``read``; ``process_return`` changes stock
and records a refund, so it is declared ``write`` and a plan using it needs a grant or a human's approval.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from nodes.common.permissions import declare
from nodes.tools.errors import PermanentToolError
from services.stores.shop import ShopError, get_shop
from state.common import RunContext


@tool
def get_item_descriptions(category: str, filter: str = "") -> dict[str, Any]:
    """Describe the shop's items in a category (e.g. "sunglasses"), optionally only those matching `filter` words
    (e.g. "round"). Returns `items` and their `item_ids`."""
    shop = get_shop()
    if category.strip().lower() not in shop.categories():
        raise PermanentToolError(f"unknown category {category!r}; categories: {', '.join(shop.categories())}")
    items = shop.describe(category, filter.split())
    return {"category": category, "filter": filter, "items": items, "item_ids": [i["item_id"] for i in items]}


@tool
def check_inventory(item_ids: list[str]) -> dict[str, Any]:
    """Stock levels of items by id. Returns `stock` rows and the ids `in_stock_ids` / `out_of_stock_ids`."""
    rows, unknown = get_shop().stock(item_ids)
    return {
        "stock": [{**row, "in_stock": row["quantity"] > 0} for row in rows],
        "in_stock_ids": [row["item_id"] for row in rows if row["quantity"] > 0],
        "out_of_stock_ids": [row["item_id"] for row in rows if row["quantity"] <= 0],
        "unknown_ids": unknown,
    }


@tool
def get_item_price(item_ids: list[str]) -> dict[str, Any]:
    """Current prices of items by id. Returns `prices` rows with name, price and currency."""
    rows, unknown = get_shop().prices(item_ids)
    return {"prices": rows, "unknown_ids": unknown}


@tool
def process_return(order_id: str, item_id: str, runtime: ToolRuntime[RunContext], reason: str = "") -> dict[str, Any]:
    """Return an item from one of the customer's orders: records the return, restocks it and refunds the price."""
    user_id = (runtime.context or RunContext()).user_id
    try:
        outcome = get_shop().process_return(user_id, order_id, item_id, reason)
    except ShopError as exc:
        raise PermanentToolError(str(exc)) from exc
    return {
        "order_id": outcome.order_id,
        "item_id": outcome.item_id,
        "refund": float(outcome.refund),
        "currency": outcome.currency,
        "restocked": outcome.restocked,
        "status": "returned",
    }


declare(process_return, "write")

SHOP_TOOLS = [get_item_descriptions, check_inventory, get_item_price, process_return]
