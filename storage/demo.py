"""A realistic synthetic shop export, for the demo, the tests and the benchmarks.

The generator is vectorised with numpy, seeded and deterministic. What it builds in, so
that every tool has something real to find:

- two years of trading with growth, a November-December peak, a weekly cycle and
  promotion days with discounts and bigger baskets;
- customers from loyal to one-off (plus some wholesale buyers and guest checkouts), so RFM
  segments separate;
- product bundles bought together, so association rules find real rules;
- returns as `C`-prefixed invoices with negative quantities, and a few exact duplicate
  lines, as in real exports;
- English and Chinese product names.

Dates are written like the UCI "Online Retail" export (`12/1/2023 8:26`, month first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
    "Category",
    "Channel",
)
START = np.datetime64("2023-01-01")
DAYS = 730
FIRST_INVOICE = 536_365
LINES_PER_CUSTOMER = 123  # the UCI export's ratio: 540k lines, about 4,400 customers
RETURN_SHARE = 0.02
DUPLICATE_SHARE = 0.001
GUEST_SHARE = 0.02

# (English category, Chinese category, price level, English nouns, Chinese nouns)
CATEGORIES = (
    ("Tea & Coffee", "茶与咖啡", 6.0,
     ("TEAPOT", "TEA CUP SET", "GREEN TEA TIN", "COFFEE MUG", "TEA STRAINER", "MILK JUG"),
     ("龙井绿茶", "青花瓷茶杯", "紫砂茶壶", "普洱茶饼", "茶叶罐", "公道杯")),
    ("Kitchen", "厨房", 8.0,
     ("CAKE STAND", "BAKING SET", "LUNCH BOX", "JAM JAR", "CUTLERY SET", "APRON"),
     ("陶瓷碗", "不锈钢饭盒", "木质砧板", "玻璃调料瓶", "烘焙模具", "围裙")),
    ("Home Decor", "家居装饰", 5.0,
     ("T-LIGHT HOLDER", "HANGING HEART", "PHOTO FRAME", "WALL CLOCK", "CUSHION COVER", "VASE"),
     ("香薰蜡烛", "相框", "挂钟", "抱枕套", "花瓶", "装饰画")),
    ("Stationery", "文具", 2.5,
     ("NOTEBOOK", "PENCIL CASE", "WRAPPING PAPER", "GREETING CARD", "STICKER SHEET", "PEN SET"),
     ("笔记本", "笔袋", "包装纸", "贺卡", "贴纸", "钢笔套装")),
    ("Gifts", "礼品", 7.0,
     ("GIFT BOX", "KEYRING", "MUSIC BOX", "SNOW GLOBE", "POSTCARD SET", "PIGGY BANK"),
     ("礼盒", "钥匙扣", "八音盒", "水晶球", "明信片套装", "存钱罐")),
    ("Garden", "园艺", 9.0,
     ("PLANT POT", "WATERING CAN", "BIRD HOUSE", "GARDEN GLOVES", "SEED TIN", "LANTERN"),
     ("花盆", "洒水壶", "鸟屋", "园艺手套", "种子盒", "庭院灯")),
    ("Toys", "玩具", 4.0,
     ("JIGSAW PUZZLE", "SPINNING TOP", "RAG DOLL", "BUILDING BLOCKS", "KITE", "YO-YO"),
     ("拼图", "陀螺", "布娃娃", "积木", "风筝", "溜溜球")),
    ("Party", "派对", 3.0,
     ("PAPER CHAIN KIT", "BUNTING", "PARTY CUPS", "BALLOONS", "NAPKINS", "CANDLES"),
     ("彩带", "三角旗", "纸杯", "气球", "餐巾纸", "生日蜡烛")),
)  # fmt: skip
MODIFIERS_EN = ("WHITE", "RED", "VINTAGE", "REGENCY", "BLUE POLKADOT", "PINK", "RETRO", "JUMBO")
SIZES = (("", ""), ("SMALL ", "小号"), ("LARGE ", "大号"))
MODIFIERS_ZH = ("复古", "北欧", "手工", "经典", "迷你", "中国风", "简约", "彩色")
COUNTRIES = (
    ("United Kingdom", 0.58),
    ("China", 0.12),
    ("Germany", 0.07),
    ("France", 0.06),
    ("Netherlands", 0.04),
    ("United States", 0.04),
    ("Spain", 0.03),
    ("Japan", 0.03),
    ("Australia", 0.03),
)
CHANNELS = ("web", "app", "marketplace")
# (share of customers, mean orders, share active until the end, mean quantity factor)
CUSTOMER_TYPES = {
    "loyal": (0.08, 32.0, 0.9, 1.0),
    "regular": (0.22, 8.0, 0.6, 1.0),
    "occasional": (0.35, 2.5, 0.3, 1.0),
    "one-off": (0.30, 1.0, 0.0, 1.0),
    "wholesale": (0.05, 14.0, 0.8, 8.0),
}


@dataclass(frozen=True)
class _Catalogue:
    code: np.ndarray
    name: np.ndarray
    category: np.ndarray
    price: np.ndarray
    popularity: np.ndarray
    partner: np.ndarray  # a product bought with this one, or -1


def write_demo_csv(path: str | Path, *, rows: int = 50_000, seed: int = 7) -> Path:
    """Write `rows` order lines as a UTF-8 CSV export; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = _export_frame(rows, seed)
    options = pa_csv.WriteOptions(quoting_style="none")
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path, options)
    return path


def demo_frame(rows: int = 50_000, seed: int = 7) -> pd.DataFrame:
    """The same lines as `write_demo_csv`, typed: dates as datetimes, guests as NA ids."""
    frame = _export_frame(rows, seed)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"], format="%m/%d/%Y %H:%M")
    return frame


def _export_frame(rows: int, seed: int) -> pd.DataFrame:
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(rng)
    lines = _lines(rng, catalogue, rows)
    return _format(lines, catalogue)


def _catalogue(rng: np.random.Generator) -> _Catalogue:
    names, categories, prices = [], [], []
    for category, category_zh, level, nouns_en, nouns_zh in CATEGORIES:
        for noun_en, noun_zh in zip(nouns_en, nouns_zh, strict=True):
            for modifier_en, modifier_zh in zip(MODIFIERS_EN, MODIFIERS_ZH, strict=True):
                for size_en, size_zh in SIZES:
                    # About a third of the range is sold under Chinese names.
                    chinese = rng.random() < 0.3
                    name_zh = f"{size_zh}{modifier_zh}{noun_zh}"
                    name_en = f"{size_en}{modifier_en} {noun_en}"
                    names.append(name_zh if chinese else name_en)
                    categories.append(f"{category} {category_zh}" if chinese else category)
                    prices.append(round(float(level * rng.lognormal(0.0, 0.45)), 2))
    count = len(names)
    order = rng.permutation(count)
    popularity = 1.0 / np.arange(1, count + 1) ** 0.9  # Zipf-like: a few best sellers
    codes = np.array([f"{20000 + 37 * i}" for i in range(count)], dtype=object)
    lettered = rng.random(count) < 0.2
    codes[lettered] = [f"{code}{chr(65 + i % 5)}" for i, code in enumerate(codes[lettered])]
    return _Catalogue(
        code=codes[order],
        name=np.array(names, dtype=object)[order],
        category=np.array(categories, dtype=object)[order],
        price=np.array(prices)[order],
        popularity=popularity / popularity.sum(),
        partner=_bundles(rng, count),
    )


def _bundles(rng: np.random.Generator, count: int) -> np.ndarray:
    """Pair popular products into bundles (both directions) that customers buy together."""
    partner = np.full(count, -1)
    popular = rng.permutation(min(120, count))
    for left, right in popular[: len(popular) // 2 * 2].reshape(-1, 2)[:40]:
        partner[left], partner[right] = right, left
    return partner


def _daily_weights() -> np.ndarray:
    """Relative order volume per day: growth, Christmas peak, weekly cycle, promotions."""
    days = START + np.arange(DAYS)
    day_of_year = (days - days.astype("datetime64[Y]")).astype(int)
    weekday = (days.astype(int) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    growth = np.linspace(1.0, 1.35, DAYS)
    season = 1.0 + 0.55 * np.exp(-(((day_of_year - 335) / 28.0) ** 2))
    season -= 0.2 * np.exp(-(((day_of_year - 45) / 20.0) ** 2))
    weekly = np.array([1.05, 1.1, 1.05, 1.15, 0.95, 0.6, 0.75])[weekday]
    return growth * season * weekly * np.where(_promotion_days(days), 2.4, 1.0)


def _promotion_days(days: np.ndarray) -> np.ndarray:
    month_day = pd.DatetimeIndex(days).strftime("%m-%d")
    return np.isin(month_day, ["06-18", "11-11", "11-24", "11-29", "03-08", "09-09"])


def _lines(rng: np.random.Generator, catalogue: _Catalogue, rows: int) -> pd.DataFrame:
    customers = _customers(rng, max(20, round(rows / LINES_PER_CUSTOMER)))
    surplus = 1.1
    while True:
        orders = _orders(rng, customers, rows, surplus)
        lines = _order_lines(rng, catalogue, orders, customers)
        lines = _with_returns_and_duplicates(rng, lines)
        if len(lines) >= rows:
            break
        surplus *= 1.5
    # Thin out random lines to the exact count, so the export still spans the whole period.
    keep = np.sort(rng.choice(len(lines), size=rows, replace=False))
    return lines.iloc[keep].reset_index(drop=True)


def _customers(rng: np.random.Generator, count: int) -> pd.DataFrame:
    kinds = list(CUSTOMER_TYPES)
    shares = np.array([CUSTOMER_TYPES[kind][0] for kind in kinds])
    kind = rng.choice(len(kinds), size=count, p=shares / shares.sum())
    table = np.array([CUSTOMER_TYPES[name][1:] for name in kinds])
    mean_orders, stays, quantity_factor = table[kind].T
    orders = np.where(mean_orders <= 1, 1, 1 + rng.poisson(np.maximum(mean_orders - 1, 0)))
    country_names = [name for name, _ in COUNTRIES]
    weights = np.array([share for _, share in COUNTRIES])
    start = rng.uniform(0, 0.85, count) * np.where(mean_orders > 10, 0.3, 1.0)
    start[rng.random(count) < 0.4] = 0.0  # customers the shop already had on day one
    span = np.where(rng.random(count) < stays, 1.0, rng.uniform(0.05, 0.5, count))
    return pd.DataFrame(
        {
            "id": rng.permutation(np.arange(12_346, 12_346 + count)),
            "orders": orders,
            "start": start,
            "end": np.minimum(1.0, start + span),
            "quantity_factor": quantity_factor,
            "country": np.array(country_names)[rng.choice(len(weights), count, p=weights)],
            "channel": rng.choice(len(CHANNELS), size=count, p=[0.55, 0.3, 0.15]),
        }
    )


def _orders(
    rng: np.random.Generator, customers: pd.DataFrame, rows: int, surplus: float
) -> pd.DataFrame:
    owner = np.repeat(np.arange(len(customers)), customers["orders"].to_numpy())
    # Sample each order's day from the daily volume curve, within its customer's active span.
    cdf = np.cumsum(_daily_weights())
    cdf /= cdf[-1]
    low = np.interp(customers["start"].to_numpy()[owner], [0, 1], [0, 1])
    high = customers["end"].to_numpy()[owner]
    day = np.searchsorted(cdf, rng.uniform(low, high))
    day = np.minimum(day, DAYS - 1)
    hour = np.clip(rng.normal(np.where(rng.random(len(owner)) < 0.7, 12, 19), 2.5), 7, 22.9)
    minute = (hour * 60).astype(int)
    when = START + day.astype("timedelta64[D]") + minute.astype("timedelta64[m]")
    mean_lines = rows * surplus / len(owner)
    size = np.maximum(1, rng.lognormal(np.log(mean_lines) - 0.32, 0.8, len(owner)).astype(int))
    promo = _promotion_days(START + day.astype("timedelta64[D]"))
    channel = np.where(
        rng.random(len(owner)) < 0.8,
        customers["channel"].to_numpy()[owner],
        rng.integers(0, 3, len(owner)),
    )
    guest = rng.random(len(owner)) < GUEST_SHARE
    frame = pd.DataFrame(
        {
            "customer": owner,
            "when": when,
            "size": size,
            "promo": promo,
            "channel": channel,
            "guest": guest,
        }
    )
    return frame.sort_values("when", kind="stable").reset_index(drop=True)


def _order_lines(
    rng: np.random.Generator,
    catalogue: _Catalogue,
    orders: pd.DataFrame,
    customers: pd.DataFrame,
) -> pd.DataFrame:
    order = np.repeat(np.arange(len(orders)), orders["size"].to_numpy())
    product = rng.choice(len(catalogue.code), size=len(order), p=catalogue.popularity)

    # Bundles: a line whose product has a partner often brings the partner along.
    partner = catalogue.partner[product]
    brings = (partner >= 0) & (rng.random(len(order)) < 0.55)
    order = np.concatenate([order, order[brings]])
    product = np.concatenate([product, partner[brings]])
    # One line per product and order, as a shop system writes it.
    key = np.unique(order.astype(np.int64) * len(catalogue.code) + product)
    order, product = key // len(catalogue.code), key % len(catalogue.code)

    owner = orders["customer"].to_numpy()[order]
    promo = orders["promo"].to_numpy()[order]
    factor = customers["quantity_factor"].to_numpy()[owner]
    quantity = rng.geometric(0.55, len(order)) * factor * np.where(promo, 1.5, 1.0)
    price = catalogue.price[product] * np.where(promo, 0.8, 1.0)
    return pd.DataFrame(
        {
            "order": order,
            "product": product,
            "quantity": np.maximum(1, quantity.round()).astype(np.int64),
            "price": price.round(2),
            "when": orders["when"].to_numpy()[order],
            "customer_id": pd.array(customers["id"].to_numpy()[owner], dtype="Int64"),
            "guest": orders["guest"].to_numpy()[order],
            "country": customers["country"].to_numpy()[owner],
            "channel": orders["channel"].to_numpy()[order],
        }
    )


def _with_returns_and_duplicates(rng: np.random.Generator, lines: pd.DataFrame) -> pd.DataFrame:
    """Add return lines (later, negative quantity) and a few exact duplicate lines."""
    returned = lines.sample(frac=RETURN_SHARE, random_state=rng).copy()
    returned["quantity"] = -rng.integers(1, returned["quantity"].to_numpy() + 1)
    delay = rng.integers(1, 21, len(returned)).astype("timedelta64[D]")
    returned["when"] = np.minimum(
        returned["when"].to_numpy() + delay, np.datetime64(START + DAYS) - np.timedelta64(1, "m")
    )
    returned["order"] = -1 - returned["order"]  # negative order numbers mark return invoices
    duplicated = lines.sample(frac=DUPLICATE_SHARE, random_state=rng)
    combined = pd.concat([lines, returned, duplicated], ignore_index=True)
    return combined.sort_values(["when", "order"], kind="stable").reset_index(drop=True)


def _format(lines: pd.DataFrame, catalogue: _Catalogue) -> pd.DataFrame:
    """Turn generated lines into an export: invoice numbers, codes, names, dates as text."""
    invoice_key = lines["order"].to_numpy()
    keys, first = np.unique(invoice_key, return_index=True)
    # Number invoices in time order, as a shop system would.
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(keys))
    number = FIRST_INVOICE + rank[np.searchsorted(keys, invoice_key)]
    invoice = number.astype(str).astype(object)
    is_return = invoice_key < 0
    invoice[is_return] = "C" + invoice[is_return]

    # Guest checkouts have no customer id, as in real exports.
    customer_ids = lines["customer_id"].mask(lines["guest"])
    product = lines["product"].to_numpy()
    return pd.DataFrame(
        {
            "InvoiceNo": invoice,
            "StockCode": catalogue.code[product],
            "Description": catalogue.name[product],
            "Quantity": lines["quantity"].to_numpy(),
            "InvoiceDate": _uci_dates(lines["when"].to_numpy()),
            "UnitPrice": lines["price"].to_numpy(),
            "CustomerID": customer_ids,
            "Country": lines["country"].to_numpy(),
            "Category": catalogue.category[product],
            "Channel": np.array(CHANNELS, dtype=object)[lines["channel"].to_numpy()],
        },
        columns=list(COLUMNS),
    )


def _uci_dates(when: np.ndarray) -> np.ndarray:
    """Format as `12/1/2023 8:26` (no zero padding), formatting each distinct time once."""
    unique, inverse = np.unique(when, return_inverse=True)
    stamps = pd.DatetimeIndex(unique)
    text = [
        f"{m}/{d}/{y} {h}:{mi:02d}"
        for m, d, y, h, mi in zip(
            stamps.month, stamps.day, stamps.year, stamps.hour, stamps.minute, strict=True
        )
    ]
    return np.array(text, dtype=object)[inverse]
