"""The demo shop: a real SQLite catalogue, and seed 001's four tools over it."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langgraph.prebuilt import ToolRuntime

from loom.settings import Settings
from nodes.common.permissions import permission_of
from nodes.tools.errors import PermanentToolError
from nodes.tools.shop import SHOP_TOOLS, check_inventory, get_item_descriptions, get_item_price
from services.stores.shop import ShopError, get_shop
from state.common import RunContext


def test_catalogue_is_created_and_seeded_under_the_data_dir(loom_env: Settings) -> None:
    shop = get_shop()
    assert (loom_env.data_dir / "shop.sqlite").is_file()
    assert "sunglasses" in shop.categories() and "round" in shop.styles()


def test_describe_check_and_price_round_sunglasses() -> None:
    found = get_item_descriptions.invoke({"category": "sunglasses", "filter": "round"})
    assert found["item_ids"] == ["SG-101", "SG-102", "SG-105", "SG-107"]
    stock = check_inventory.invoke({"item_ids": [*found["item_ids"], "NOPE"]})
    assert stock["in_stock_ids"] == ["SG-101", "SG-105"]
    assert stock["out_of_stock_ids"] == ["SG-102", "SG-107"] and stock["unknown_ids"] == ["NOPE"]
    prices = get_item_price.invoke({"item_ids": stock["in_stock_ids"]})["prices"]
    assert [(p["item_id"], p["price"], p["currency"]) for p in prices] == [
        ("SG-101", 89.0, "USD"),
        ("SG-105", 219.0, "USD"),
    ]


def test_unknown_category_is_a_permanent_error_listing_the_real_ones() -> None:
    with pytest.raises(PermanentToolError, match="categories: bags, hats, sunglasses, watches"):
        get_item_descriptions.invoke({"category": "shoes"})


def test_only_process_return_writes() -> None:
    assert {t.name: permission_of(t) for t in SHOP_TOOLS} == {
        "get_item_descriptions": "read",
        "check_inventory": "read",
        "get_item_price": "read",
        "process_return": "write",
    }


def call(name: str, args: dict[str, Any], user_id: str = "demo") -> ToolMessage:
    """With the run context injected as a graph's ToolNode would; errors come back as the model would see them."""
    runtime: ToolRuntime[RunContext, Any] = ToolRuntime(
        state={},
        context=RunContext(user_id=user_id),
        config={},
        stream_writer=lambda _: None,
        tool_call_id="c1",
        store=None,
    )
    tool = next(t for t in SHOP_TOOLS if t.name == name)
    try:
        return tool.invoke({"name": name, "args": {**args, "runtime": runtime}, "id": "c1", "type": "tool_call"})
    except PermanentToolError as exc:
        return ToolMessage(str(exc), tool_call_id="c1", status="error")


def test_process_return_refunds_restocks_and_refuses_twice() -> None:
    before = get_shop().stock(["SG-103"])[0][0]["quantity"]
    done = call("process_return", {"order_id": "ORD-1001", "item_id": "SG-103", "reason": "too big"})
    assert '"refund": 149.0' in done.text and '"status": "returned"' in done.text
    assert get_shop().stock(["SG-103"])[0][0]["quantity"] == before + 1
    again = call("process_return", {"order_id": "ORD-1001", "item_id": "SG-103"})
    assert again.status == "error" and "already been returned" in again.text


@pytest.mark.parametrize(
    ("user", "order", "item", "message"),
    [
        ("demo", "ORD-1002", "HT-201", "past the 30-day return window"),
        ("demo", "ORD-2001", "WT-301", "no order 'ORD-2001' for this customer"),
        ("demo", "ORD-1003", "SG-105", "does not contain item 'SG-105'"),
    ],
)
def test_returns_follow_the_shop_rules(user: str, order: str, item: str, message: str) -> None:
    with pytest.raises(ShopError, match=message):
        get_shop().process_return(user, order, item, "")
    assert call("process_return", {"order_id": order, "item_id": item}, user).status == "error"
