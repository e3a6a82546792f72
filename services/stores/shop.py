"""The demo shop behind seed 001's planning example: a real SQLite catalogue, stock, prices and orders.

The database is ``<data_dir>/shop.sqlite``, created and seeded with the demo catalogue on first use,
so "find round sunglasses that are in stock and tell me their prices" is answered from rows, not
from the model's imagination. Returns write real rows: stock goes back up and the return is recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, Numeric, String, Text, create_engine, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from loom.settings import Settings, get_settings
from services.stores.db import Base, create_tables

RETURN_WINDOW_DAYS = 30


class Item(Base):
    __tablename__ = "shop_items"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    style: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="USD")


class Stock(Base):
    __tablename__ = "shop_inventory"
    item_id: Mapped[str] = mapped_column(ForeignKey("shop_items.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class Order(Base):
    __tablename__ = "shop_orders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("shop_items.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    purchased_at: Mapped[datetime] = mapped_column(DateTime)


class Return(Base):
    __tablename__ = "shop_returns"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("shop_orders.id"), unique=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("shop_items.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    refund: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    created_at: Mapped[datetime] = mapped_column(DateTime)


# id, name, category, style, description, price, stock
CATALOGUE: tuple[tuple[str, str, str, str, str, str, int], ...] = (
    (
        "SG-101",
        "Lennon Round Classic",
        "sunglasses",
        "round",
        "Thin gold metal round frame, green glass lenses.",
        "89.00",
        14,
    ),
    (
        "SG-102",
        "Round Tortoise Acetate",
        "sunglasses",
        "round",
        "Chunky tortoiseshell acetate, brown gradient.",
        "129.00",
        0,
    ),
    (
        "SG-103",
        "Aviator Gold Pilot",
        "sunglasses",
        "aviator",
        "Teardrop pilot frame, polarised grey lenses.",
        "149.00",
        7,
    ),
    ("SG-104", "Wayfarer Black", "sunglasses", "square", "Matte black square acetate frame, UV400.", "119.00", 22),
    (
        "SG-105",
        "Round Titanium Polarised",
        "sunglasses",
        "round",
        "Featherweight titanium round frame, polarised.",
        "219.00",
        3,
    ),
    ("SG-106", "Cat-Eye Retro", "sunglasses", "cat-eye", "Upswept 1950s cat-eye frame in cherry red.", "99.00", 5),
    ("SG-107", "Kids Round Flex", "sunglasses", "round", "Bendable rubber round frame for ages 4-8.", "39.00", 0),
    ("HT-201", "Canvas Bucket Hat", "hats", "bucket", "Washed cotton canvas, packable brim.", "35.00", 30),
    ("HT-202", "Straw Panama", "hats", "fedora", "Hand-woven toquilla straw, black band.", "65.00", 0),
    (
        "WT-301",
        "Field Watch 38mm",
        "watches",
        "field",
        "Steel case, khaki canvas strap, 100 m water resistant.",
        "185.00",
        4,
    ),
    ("BG-401", "Beach Tote", "bags", "tote", "Striped recycled-cotton tote with inner pocket.", "49.00", 12),
)
# order id, user, item, quantity, days since purchase
ORDERS: tuple[tuple[str, str, str, int, int], ...] = (
    ("ORD-1001", "demo", "SG-103", 1, 10),
    ("ORD-1002", "demo", "HT-201", 2, 45),
    ("ORD-1003", "demo", "SG-101", 1, 2),
    ("ORD-2001", "alice", "WT-301", 1, 5),
)


@dataclass(frozen=True)
class ReturnOutcome:
    order_id: str
    item_id: str
    refund: Decimal
    currency: str
    restocked: int


class ShopError(LookupError):
    """A request the catalogue cannot satisfy (unknown order, window passed); retrying will not help."""


class ShopCatalogue:
    """Queries over one shop database; thread-safe (sync tools run in a thread pool)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{path}")
        create_tables(self.engine, Item, Stock, Order, Return)
        self._seed()

    def _seed(self) -> None:
        with Session(self.engine) as session, session.begin():
            if session.scalar(select(Item.id).limit(1)) is not None:
                return
            for item_id, name, category, style, description, price, quantity in CATALOGUE:
                session.add(
                    Item(
                        id=item_id,
                        name=name,
                        category=category,
                        style=style,
                        description=description,
                        price=Decimal(price),
                    )
                )
                session.add(Stock(item_id=item_id, quantity=quantity))
            now = _now()
            for order_id, user_id, item_id, quantity, days in ORDERS:
                purchased = now - timedelta(days=days)
                session.add(
                    Order(id=order_id, user_id=user_id, item_id=item_id, quantity=quantity, purchased_at=purchased)
                )

    def categories(self) -> list[str]:
        with Session(self.engine) as session:
            return sorted(set(session.scalars(select(Item.category))))

    def styles(self) -> list[str]:
        with Session(self.engine) as session:
            return sorted({style for style in session.scalars(select(Item.style)) if style})

    def describe(self, category: str, words: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Items of ``category`` whose name, style or description contains every word in ``words``."""
        with Session(self.engine) as session:
            items = session.scalars(select(Item).where(Item.category == category.strip().lower()).order_by(Item.id))
            rows = [_describe(item) for item in items]
        wanted = [w.lower() for w in words if w.strip()]
        return [r for r in rows if all(w in f"{r['name']} {r['style']} {r['description']}".lower() for w in wanted)]

    def stock(self, item_ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """(rows with quantity, unknown ids), in the order asked."""
        with Session(self.engine) as session:
            found = {row.id: (row, qty) for row, qty in session.execute(_with_stock(item_ids)).tuples()}
        rows = [{"item_id": i, "name": found[i][0].name, "quantity": found[i][1]} for i in item_ids if i in found]
        return rows, [i for i in item_ids if i not in found]

    def prices(self, item_ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
        with Session(self.engine) as session:
            found = {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(list(item_ids))))}
        rows = [_price(found[i]) for i in item_ids if i in found]
        return rows, [i for i in item_ids if i not in found]

    def process_return(self, user_id: str, order_id: str, item_id: str, reason: str) -> ReturnOutcome:
        """Record the return, put the items back in stock and compute the refund, in one transaction."""
        with Session(self.engine) as session, session.begin():
            order = session.get(Order, order_id)
            if order is None or order.user_id != user_id:
                raise ShopError(f"no order {order_id!r} for this customer")
            if order.item_id != item_id:
                raise ShopError(f"order {order_id} does not contain item {item_id!r} (it contains {order.item_id})")
            if session.scalar(select(Return.id).where(Return.order_id == order_id)) is not None:
                raise ShopError(f"order {order_id} has already been returned")
            if _now() - order.purchased_at > timedelta(days=RETURN_WINDOW_DAYS):
                raise ShopError(f"order {order_id} is past the {RETURN_WINDOW_DAYS}-day return window")
            item = session.get_one(Item, item_id)
            refund = item.price * order.quantity
            session.add(Return(order_id=order_id, item_id=item_id, reason=reason, refund=refund, created_at=_now()))
            session.get_one(Stock, item_id).quantity += order.quantity
            return ReturnOutcome(order_id, item_id, refund, item.currency, order.quantity)


def _with_stock(item_ids: Sequence[str]) -> Any:
    return select(Item, Stock.quantity).join(Stock, Stock.item_id == Item.id).where(Item.id.in_(list(item_ids)))


def _describe(item: Item) -> dict[str, Any]:
    return {"item_id": item.id, "name": item.name, "style": item.style, "description": item.description}


def _price(item: Item) -> dict[str, Any]:
    return {"item_id": item.id, "name": item.name, "price": float(item.price), "currency": item.currency}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


_catalogues: dict[Path, ShopCatalogue] = {}
_lock = threading.Lock()


def get_shop(settings: Settings | None = None) -> ShopCatalogue:
    """The data dir's catalogue, created and seeded on first use."""
    path = ((settings or get_settings()).data_dir / "shop.sqlite").resolve()
    with _lock:
        if path not in _catalogues:
            _catalogues[path] = ShopCatalogue(path)
        return _catalogues[path]
