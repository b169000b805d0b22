"""Column-role detection: which column is the order id, the product, the price, ...

Headers are read in English and Chinese (Taobao, JD, Shopify, WooCommerce, Olist, Instacart
and the UCI "Online Retail" export are the models), then checked against the values: a
quantity must hold numbers, a timestamp must read as dates. Each candidate pair of column
and role gets a score; the best pairs are taken first, one column per role.

The dataset kind follows from the roles:

- `orders`: order lines with an order or customer id and a quantity, price or amount;
- `baskets`: a long list of basket id (or customer) and item, with no prices;
- `onehot`: one row per basket and one 0/1 column per product;
- `table`: anything else with numbers in it (no roles; the `cluster` tool can use it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from storage.clean import BOOLEAN, INTEGER, REAL, TEXT, TIMESTAMP
from storage.datasets import ROLES
from storage.errors import BadFileError, BadParameterError

MEASURES = ("quantity", "unit_price", "amount")
KEYS = ("order_id", "customer_id")
NUMERIC = {INTEGER, REAL}
#: Roles whose values are identifiers or labels, stored as text whatever they look like.
TEXT_ROLES = (
    "order_id",
    "customer_id",
    "product",
    "product_code",
    "category",
    "country",
    "channel",
)
#: Columns a one-hot table needs before it counts as one.
MIN_ONEHOT_ITEMS = 3

EXACT, STRONG, WEAK = 10, 7, 4

# (role, score, pattern on the normalised header). Normalised: lower case, camelCase split,
# units in brackets removed, anything but letters, digits and CJK turned into "_".
_PATTERNS: tuple[tuple[str, int, str], ...] = (
    # order id
    ("order_id", EXACT, r"(invoice|order|transaction|basket|receipt|bill|ticket|sales_order|"
     r"trans|purchase|cart)(_?(id|no|nr|num|number|code|ref|key))?"),
    ("order_id", EXACT, r"(订单编号|订单号|订单id|订单|主订单编号|父订单编号|子订单编号|交易号|"
     r"交易单号|单号|小票号|发票号|流水号|订单编码|交易编号|购物篮)"),
    ("order_id", STRONG, r".*(invoice|order|transaction|basket|receipt)_?(id|no|nr|number|num|"
     r"ref)"),
    ("order_id", STRONG, r".*订单.*(号|编号|id|编码)"),
    # customer id
    ("customer_id", EXACT, r"(customer|cust|client|user|buyer|member|shopper|account|visitor|"
     r"consumer|household)(_?(id|no|nr|number|code|key|name|nick|email|unique_id|user))?"),
    ("customer_id", EXACT, r"(email|e_mail|billing_email|customer_email|member_number|"
     r"household_key)"),
    ("customer_id", EXACT, r"(买家会员名|买家昵称|买家id|买家|买家账号|会员名|会员id|会员编号|"
     r"会员|客户id|客户编号|客户名称|客户姓名|客户|用户id|用户名|用户|顾客id|顾客|下单账号|买家会员id|"
     r"会员卡号|会员卡|客户账号)"),
    ("customer_id", WEAK, r"(收货人姓名|收货人|consignee)"),
    ("customer_id", STRONG, r".*(customer|buyer|client|member|shopper)_?(id|no|number|name|"
     r"email)"),
    ("customer_id", STRONG, r".*(买家|客户|会员|顾客|用户)(id|编号|名|账号|昵称)"),
    # product name
    ("product", EXACT, r"(description|product|products|item|items|goods|article|title|"
     r"lineitem_name|itemdescription|item_description|menu_item|dish|sku_name|offer)"
     r"(_?(name|title|description|desc))?"),
    ("product", EXACT, r"(商品名称|商品标题|宝贝标题|宝贝名称|商品|宝贝|产品名称|产品|品名|"
     r"货品名称|商品名|商品全称|菜品|商品简称|物品|货品)"),
    ("product", STRONG, r".*(product|item|goods|article)_?(name|title|description|desc)"),
    ("product", STRONG, r".*(商品|宝贝|产品|货品)(名称|标题|名)"),
    ("product", WEAK, r"name"),
    # product code
    ("product_code", EXACT, r"(stock_?code|sku|skus|ean|upc|barcode|gtin|asin|isbn|"
     r"variant_sku|lineitem_sku|model|part_?(no|number)|code|"
     r"(product|item|article|goods|variant|stock)_?(id|code|no|nr|number|key|sku))"),
    ("product_code", EXACT, r"(商品编码|商家编码|商品编号|商品id|宝贝id|货号|款号|sku编码|sku编号|"
     r"条形码|条码|商品条码|外部系统编号|商家sku|sku_id|skuid|商品货号|产品编号|产品编码)"),
    ("product_code", STRONG, r".*(sku|barcode|ean|stock_?code)"),
    ("product_code", STRONG, r".*(product|item|goods)_?(id|code|no|number)"),
    # quantity
    ("quantity", EXACT, r"(quantity|qty|quantities|quantity_ordered|ordered_quantity|units|"
     r"unit_count|lineitem_quantity|item_quantity|pieces|pcs|number_of_items|units_sold|"
     r"qty_ordered|sold_quantity|quantity_sold|count|item_count|num_items|amount_units)"),
    ("quantity", EXACT, r"(购买数量|数量|宝贝数量|商品数量|件数|销量|购买件数|销售数量|订购数量|"
     r"下单数量|商品件数|宝贝总数量|商品总数量)"),
    ("quantity", STRONG, r".*(qty|quantity|数量|件数)"),
    # unit price
    ("unit_price", EXACT, r"(unit_?price|price|prices|item_price|lineitem_price|price_each|"
     r"priceeach|sale_price|selling_price|unit_cost|sales_price|price_per_unit|list_price|"
     r"retail_price|unit_amount|unit_value|item_cost)"),
    ("unit_price", EXACT, r"(单价|商品单价|价格|成交价|售价|商品价格|销售单价|单品价格|宝贝单价|"
     r"成交单价|商品售价|京东价|销售价)"),
    ("unit_price", STRONG, r".*(price|单价|价格|售价)"),
    # line amount
    ("amount", EXACT, r"(amount|line_?total|line_?amount|total_?amount|sales|revenue|"
     r"sales_amount|total_sales|net_sales|gross_sales|item_total|line_item_total|"
     r"extended_price|turnover|paid_amount|payment_amount|total_price|totalprice|sale_amount|"
     r"net_amount|spend|sales_value|line_value|lineitem_total)"),
    ("amount", EXACT, r"(实付金额|金额|总金额|买家实际支付金额|实收金额|成交金额|销售额|销售金额|"
     r"商品总价|小计|应付金额|订单金额|支付金额|商品金额|实付款|总价|合计金额|实收款|实际支付金额|"
     r"商品总金额|应收金额)"),
    ("amount", STRONG, r".*(amount|revenue|sales|金额|销售额|实付)"),
    # Order-level totals repeat per line or sit on the first line only: a weak fallback.
    ("amount", WEAK, r"(total|subtotal|value|payment_value|order_total|grand_total|gross|"
     r"sum|合计|总计)"),
    # timestamp
    ("timestamp", EXACT, r"(invoice_?date|order_?date|date|datetime|date_?time|time_?stamp|"
     r"created(_at|_on|_date|_time)?|order_(time|timestamp|created_at|datetime|created)|"
     r"purchase_(date|time|timestamp|datetime)|order_purchase_timestamp|"
     r"transaction_(date|time|datetime|timestamp)|sale_date|sales_date|invoice_(time|datetime)|"
     r"placed_at|ordered_at|event_time|time|day|order_created|creation_date|date_created|"
     r"order_date_time|trans_date)"),
    ("timestamp", EXACT, r"(订单创建时间|创建时间|下单时间|付款时间|支付时间|成交时间|日期|时间|"
     r"订单日期|交易时间|交易创建时间|订单时间|下单日期|订单付款时间|购买时间|销售日期|交易日期|"
     r"订单提交时间|拍下时间)"),
    ("timestamp", STRONG, r".*(date|time|timestamp|时间|日期)"),
    ("timestamp", WEAK, r".*(paid|_at|_on)"),
    # category
    ("category", EXACT, r"(category|categories|product_category|product_category_name|"
     r"product_category_name_english|department|aisle|product_type|category_name|"
     r"main_category|sub_?category|genre|item_category|product_group|product_line|class)"),
    ("category", EXACT, r"(类目|商品类目|分类|品类|类别|一级类目|二级类目|商品分类|叶子类目|"
     r"商品类别|产品类别|品类名称)"),
    ("category", STRONG, r".*(category|categor|类目|分类|品类)"),
    ("category", WEAK, r"(type|group|section)"),
    # country or region
    ("country", EXACT, r"(country|country_code|countries|region|billing_country|"
     r"shipping_country|ship_country|customer_country|nation|country_region|market|"
     r"country_name|ship_to_country)"),
    ("country", EXACT, r"(国家|国家地区|地区|省份|收货地址省份|省|区域|所在地区|收货省份|"
     r"收货人省份|国家_地区)"),
    ("country", STRONG, r".*(country|region|province|state|国家|省份|地区)"),
    ("country", WEAK, r"(city|城市)"),
    # channel
    ("channel", EXACT, r"(channel|sales_channel|source|source_name|platform|store|shop|"
     r"marketplace|order_source|utm_source|sales_platform|medium|store_name|shop_name|"
     r"referring_site|order_channel)"),
    ("channel", EXACT, r"(渠道|平台|店铺|来源|销售渠道|订单来源|店铺名称|销售平台|下单渠道)"),
    ("channel", STRONG, r".*(channel|platform|渠道|平台)"),
)  # fmt: skip
_COMPILED = tuple(
    (role, score, re.compile(f"^(?:{pattern})$")) for role, score, pattern in _PATTERNS
)
# Headers that mention a role's words but mean something else.
_NOT = {
    "order_id": re.compile(r"item|line|status|date|time|qty|quantity|amount|total|商品|状态"),
    "customer_id": re.compile(r"address|phone|mobile|city|country|state|zip|地址|电话|手机|"
                              r"留言|备注"),
    "product": re.compile(r"(^|_)(id|code|sku|qty|quantity|price|amount|count|no|number)($|_)|"
                          r"编码|编号|id|数量|价"),
    "timestamp": re.compile(r"ship|deliver|estimated|updated|modified|limit|approved|发货|收货|"
                            r"完成|确认|退款|birth|生日"),
    "amount": re.compile(r"tax|shipping|freight|discount|refund|fee|order|cart|subtotal|运费|优惠|"
                         r"退款|税"),
    "unit_price": re.compile(r"compare|cost_of|original|tax|原价"),
    "channel": re.compile(r"url|link|链接"),
}  # fmt: skip
_ALLOWED_TYPES = {
    "quantity": NUMERIC,
    "unit_price": NUMERIC,
    "amount": NUMERIC,
    "timestamp": {TIMESTAMP},
    "order_id": {TEXT, INTEGER, REAL},
    "customer_id": {TEXT, INTEGER, REAL},
    "product": {TEXT, INTEGER},
    "product_code": {TEXT, INTEGER},
    "category": {TEXT},
    "country": {TEXT},
    "channel": {TEXT},
}
_SHOP_ORDER_NAME = re.compile(r"^#\d+$")
_PAID = re.compile(r"实付|实际支付|paid")


@dataclass(frozen=True)
class ColumnProfile:
    """What detection knows of a column: its header, stored type and a look at its values."""

    name: str
    type: str
    filled: float = 1.0
    distinct: int = 0
    binary: bool = False
    examples: tuple[str, ...] = ()


@dataclass
class Detection:
    """The detected (or overridden) roles and the dataset kind."""

    kind: str
    roles: dict[str, str] = field(default_factory=dict)


def normalise_header(header: str) -> str:
    """`InvoiceNo` -> `invoice_no`, `实付金额(元)` -> `实付金额`, `Lineitem quantity` -> ..."""
    text = re.sub(r"[(（\[【].*?[)）\]】]", "", header.strip())
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^0-9a-z\u4e00-\u9fff]+", "_", text.lower())
    return text.strip("_")


def is_time_header(header: str) -> bool:
    """Whether a header names a time, so that integers in it may be Unix times."""
    name = normalise_header(header)
    return any(
        role == "timestamp" and score >= STRONG and pattern.match(name)
        for role, score, pattern in _COMPILED
    )


def detect(profiles: list[ColumnProfile]) -> Detection:
    """Detect roles and kind for a table whose columns are described by `profiles`."""
    if _looks_onehot(profiles):
        roles = _assign(_candidates([p for p in profiles if not p.binary]))
        return Detection("onehot", {role: col for role, col in roles.items() if role in KEYS})
    roles = _complete(_assign(_candidates(profiles)), profiles)
    return Detection(_kind(roles, profiles), roles)


def apply_overrides(
    detection: Detection, profiles: list[ColumnProfile], overrides: dict[str, str | None]
) -> Detection:
    """Put the user's `role=column` choices over the detected ones (they always win)."""
    by_name = {profile.name.lower(): profile for profile in profiles}
    roles = dict(detection.roles)
    for role, column in overrides.items():
        roles.pop(role, None)
        if column is None:
            continue
        profile = by_name.get(column.strip().lower())
        if profile is None:
            names = ", ".join(p.name for p in profiles)
            raise BadParameterError(
                f"There is no column called '{column}' to use as {role}.",
                hint=f"The columns are: {names}",
            )
        _check_override_type(role, profile)
        roles = {r: c for r, c in roles.items() if c != profile.name}
        roles[role] = profile.name
    kind = detection.kind if detection.kind == "onehot" else _kind(roles, profiles, keep=True)
    return Detection(kind, roles)


def _check_override_type(role: str, profile: ColumnProfile) -> None:
    if role in MEASURES and profile.type not in NUMERIC:
        raise BadParameterError(
            f"Column '{profile.name}' holds {profile.type}, and {role} needs numbers.",
            hint="Pick a column of numbers for it.",
        )
    if role == "timestamp" and profile.type != TIMESTAMP:
        raise BadParameterError(
            f"Column '{profile.name}' does not read as dates, so it cannot be the timestamp.",
            hint="Pick a column with dates such as 2024-03-05 14:02 or 3/5/2024.",
        )


def _candidates(profiles: list[ColumnProfile]) -> list[tuple[int, int, str, str]]:
    """(score, -position, role, column) for every plausible pairing."""
    found = []
    for position, profile in enumerate(profiles):
        if profile.filled == 0:
            continue
        name = normalise_header(profile.name)
        for role, score in _header_scores(name).items():
            if profile.type in _ALLOWED_TYPES[role]:
                # A product is a name more often than a number ("Item #" beside "Item Name").
                bonus = int(role == "product" and profile.type == TEXT)
                # What the buyer actually paid beats a list total ("实付" = paid).
                bonus += int(role == "amount" and bool(_PAID.search(name)))
                found.append((score + bonus, -position, role, profile.name))
        if profile.examples and all(_SHOP_ORDER_NAME.match(v) for v in profile.examples):
            found.append((EXACT + 1, -position, "order_id", profile.name))
        if profile.type == TIMESTAMP and not _NOT["timestamp"].search(name):
            found.append((1, -position, "timestamp", profile.name))
    return sorted(found, reverse=True)


def _header_scores(name: str) -> dict[str, int]:
    scores: dict[str, int] = {}
    for role, score, pattern in _COMPILED:
        if score <= scores.get(role, 0) or not pattern.match(name):
            continue
        exclusion = _NOT.get(role)
        if exclusion and score < EXACT and exclusion.search(name):
            continue
        scores[role] = score
    return scores


def _assign(candidates: list[tuple[int, int, str, str]]) -> dict[str, str]:
    roles: dict[str, str] = {}
    taken: set[str] = set()
    for _score, _position, role, column in candidates:
        if role not in roles and column not in taken:
            roles[role] = column
            taken.add(column)
    return {role: roles[role] for role in ROLES if role in roles}


def _complete(roles: dict[str, str], profiles: list[ColumnProfile]) -> dict[str, str]:
    """A product code with no product name is the product (Instacart, `sku` exports)."""
    if "product" not in roles and "product_code" in roles:
        roles["product"] = roles.pop("product_code")
    # An order-level total ("Total" on Shopify's first line of an order) is no line amount
    # when quantity and unit price are there to multiply.
    multiplied = "quantity" in roles and "unit_price" in roles
    if multiplied and "amount" in roles and _amount_score(roles["amount"]) <= WEAK:
        roles.pop("amount")
    # A weak "name" header is a product only next to an order or customer id.
    if "product" in roles and not any(key in roles for key in KEYS):
        header = normalise_header(roles["product"])
        if header == "name":
            roles.pop("product")
    return {role: roles[role] for role in ROLES if role in roles}


def _amount_score(header: str) -> int:
    return _header_scores(normalise_header(header)).get("amount", 0)


def _kind(roles: dict[str, str], profiles: list[ColumnProfile], *, keep: bool = False) -> str:
    has_key = any(key in roles for key in KEYS)
    has_measure = any(measure in roles for measure in MEASURES)
    if has_measure and (has_key or "timestamp" in roles or "product" in roles):
        return "orders"
    if "product" in roles and has_key:
        return "baskets"
    if not keep:
        roles.clear()
    if any(profile.type in NUMERIC | {BOOLEAN} for profile in profiles):
        return "table"
    if keep and roles:
        return "table"
    names = ", ".join(profile.name for profile in profiles)
    raise BadFileError(
        "No column in this file is usable: I found no order, customer or product columns "
        f"and no numbers (columns: {names}).",
        hint="Upload an order export, or name the columns with role=COLUMN in the caption.",
    )


def _looks_onehot(profiles: list[ColumnProfile]) -> bool:
    binary = [profile for profile in profiles if profile.binary]
    return len(binary) >= MIN_ONEHOT_ITEMS and len(binary) >= len(profiles) / 2
