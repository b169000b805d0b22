"""Column-role detection on real-world export layouts, in English and Chinese."""

# Header and value rows are copied as real exports write them, however long the line.
# ruff: noqa: E501

from __future__ import annotations

import csv
import io

import pytest

from storage.errors import BadFileError, BadParameterError
from storage.ingest import detect_columns
from storage.roles import normalise_header


def _table(text: str) -> tuple[list[str], list[list[str | None]]]:
    rows = list(csv.reader(io.StringIO(text.strip())))
    return rows[0], [[cell or None for cell in row] for row in rows[1:]]


CASES = {
    "uci-online-retail": (
        """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom
536381,22139,RETROSPOT TEA SET,2,12/13/2010 9:41,4.95,15311,France""",
        "orders",
        {
            "order_id": "InvoiceNo",
            "product_code": "StockCode",
            "product": "Description",
            "quantity": "Quantity",
            "timestamp": "InvoiceDate",
            "unit_price": "UnitPrice",
            "customer_id": "CustomerID",
            "country": "Country",
        },
    ),
    "taobao-lines": (
        """订单编号,买家会员名,商品名称,购买数量,单价,实付金额,订单创建时间
3012345678901234567,tb_小王,龙井绿茶 250g,2,¥59.00,¥118.00,2024/03/05 14:02:11
3012345678901234568,tb_小李,紫砂茶壶,1,¥1,299.00,¥1,299.00,2024/03/06 09:10:00
3012345678901234569,tb_小王,青花瓷茶杯,4,¥25.00,¥100.00,2024/03/07 20:00:00""".replace(
            "¥1,299.00", '"¥1,299.00"'
        ),
        "orders",
        {
            "order_id": "订单编号",
            "customer_id": "买家会员名",
            "product": "商品名称",
            "quantity": "购买数量",
            "unit_price": "单价",
            "amount": "实付金额",
            "timestamp": "订单创建时间",
        },
    ),
    "generic-snake-case": (
        """order_id,user_id,sku,qty,price,created_at
1001,u1,SKU-1,2,9.99,2024-03-05T14:02:00Z
1001,u1,SKU-2,1,19.50,2024-03-05T14:02:00Z
1002,u2,SKU-1,3,9.99,2024-03-06T08:00:00Z""",
        "orders",
        {
            "order_id": "order_id",
            "customer_id": "user_id",
            "product": "sku",
            "quantity": "qty",
            "unit_price": "price",
            "timestamp": "created_at",
        },
    ),
    "basket-list": (
        """basket_id,item
1,bread
1,milk
2,bread
2,eggs""",
        "baskets",
        {"order_id": "basket_id", "product": "item"},
    ),
    "transaction-item": (
        """TransactionID,Item
T1,Coffee
T1,Bread
T2,Tea""",
        "baskets",
        {"order_id": "TransactionID", "product": "Item"},
    ),
    "one-hot-baskets": (
        """bread,milk,eggs,tea,jam
1,0,1,0,0
0,1,1,1,0
1,1,0,0,1""",
        "onehot",
        {},
    ),
    "one-hot-with-id": (
        """Transaction,bread,milk,eggs,tea
1,True,False,True,False
2,False,True,True,True
3,True,True,False,False""".replace("True", "1").replace("False", "0"),
        "onehot",
        {"order_id": "Transaction"},
    ),
    "plain-numeric-table": (
        """sepal_length,sepal_width,petal_length,petal_width
5.1,3.5,1.4,0.2
4.9,3.0,1.4,0.2
6.3,3.3,6.0,2.5""",
        "table",
        {},
    ),
    "shopify-orders": (
        """Name,Email,Financial Status,Paid at,Subtotal,Total,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Billing Country,Source
#1001,ann@example.com,paid,2024-03-05 14:05:00 +0100,39.00,44.00,2024-03-05 14:02:11 +0100,2,Green Tea,12.00,GT-1,DE,web
#1001,ann@example.com,,,,,2024-03-05 14:02:11 +0100,1,Tea Pot,15.00,TP-2,DE,web
#1002,bob@example.com,paid,2024-03-06 10:00:00 +0100,15.00,20.00,2024-03-06 09:59:00 +0100,1,Tea Pot,15.00,TP-2,FR,pos""",
        "orders",
        {
            "order_id": "Name",
            "customer_id": "Email",
            "timestamp": "Created at",
            "quantity": "Lineitem quantity",
            "product": "Lineitem name",
            "unit_price": "Lineitem price",
            "product_code": "Lineitem sku",
            "country": "Billing Country",
            "channel": "Source",
        },
    ),
    "woocommerce": (
        """Order Number,Order Status,Order Date,Email (Billing),Country Code (Billing),Order Total Amount,SKU,Item #,Item Name,Quantity (- Refund),Item Cost
2001,completed,2024-02-01 10:00,ann@example.com,GB,30.00,MUG-1,1,Coffee Mug,2,10.00
2001,completed,2024-02-01 10:00,ann@example.com,GB,30.00,SPN-2,2,Spoon,1,10.00
2002,processing,2024-02-02 11:30,bob@example.com,US,12.00,MUG-1,1,Coffee Mug,1,12.00""",
        "orders",
        {
            "order_id": "Order Number",
            "timestamp": "Order Date",
            "customer_id": "Email (Billing)",
            "country": "Country Code (Billing)",
            "product_code": "SKU",
            "product": "Item Name",
            "quantity": "Quantity (- Refund)",
            "unit_price": "Item Cost",
        },
    ),
    "instacart-order-products": (
        """order_id,product_id,add_to_cart_order,reordered
2,33120,1,1
2,28985,2,1
3,9327,1,0
3,45918,2,1""",
        "baskets",
        {"order_id": "order_id", "product": "product_id"},
    ),
    "olist-order-items": (
        """order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value
00010242fe8c5a6d1ba2dd792cb16214,1,4244733e06e7ecb4970a6e2683c13e61,48436dade18ac8b2bce089ec2a041202,2017-09-19 09:45:35,58.90,13.29
00018f77f2f0320c557190d7a144bdd3,1,e5f2d52b802189ee658865ca93d83a8f,dd7ddc04e1b6c2c614352b383efe2d36,2017-05-03 11:05:13,239.90,19.93""",
        "orders",
        {"order_id": "order_id", "product": "product_id", "unit_price": "price"},
    ),
    "taobao-order-report": (
        """订单编号,买家会员名,买家支付宝账号,买家应付货款,总金额,买家实际支付金额,订单状态,收货地址,订单创建时间,订单付款时间,宝贝标题,宝贝总数量,店铺名称
1234567890123456789,tb_abc,abc@alipay.com,99.00,109.00,104.00,交易成功,浙江省 杭州市,2024-01-02 10:00:00,2024-01-02 10:01:00,复古茶杯,2,茶小铺
1234567890123456790,tb_def,def@alipay.com,59.00,59.00,59.00,交易关闭,上海 上海市,2024-01-03 11:00:00,,紫砂壶,1,茶小铺""",
        "orders",
        {
            "order_id": "订单编号",
            "customer_id": "买家会员名",
            "timestamp": "订单创建时间",
            "product": "宝贝标题",
            "quantity": "宝贝总数量",
            "amount": "买家实际支付金额",
            "channel": "店铺名称",
        },
    ),
    "jd-export": (
        """订单号,商品ID,商品名称,订购数量,京东价,订单金额,下单时间,客户账号,省
250001,100012,智能手环,1,199.00,199.00,2024-05-01 08:00:00,jd_u1,北京
250002,100013,蓝牙耳机,2,99.00,198.00,2024-05-02 09:30:00,jd_u2,广东""",
        "orders",
        {
            "order_id": "订单号",
            "product_code": "商品ID",
            "product": "商品名称",
            "quantity": "订购数量",
            "unit_price": "京东价",
            "amount": "订单金额",
            "timestamp": "下单时间",
            "customer_id": "客户账号",
            "country": "省",
        },
    ),
    "pinduoduo": (
        """订单号,商品,商品id,商品数量,商品总价(元),订单成交时间,用户实付金额(元)
240601-123,纸巾 10包,55501,2,"19,80",2024年6月1日 12:00,"18,80"
240601-124,洗衣液,55502,1,"29,90",2024年6月1日 13:05,"29,90"
240602-125,纸巾 10包,55501,1,"9,90",2024年6月2日 09:00,"9,90\"""",
        "orders",
        {
            "order_id": "订单号",
            "product": "商品",
            "product_code": "商品id",
            "quantity": "商品数量",
            "amount": "商品总价(元)",
            "timestamp": "订单成交时间",
        },
    ),
    "online-retail-ii": (
        """Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country
489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom
489434,79323P,PINK CHERRY LIGHTS,12,2009-12-01 07:45:00,6.75,13085.0,United Kingdom
C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia""",
        "orders",
        {
            "order_id": "Invoice",
            "product_code": "StockCode",
            "product": "Description",
            "quantity": "Quantity",
            "timestamp": "InvoiceDate",
            "unit_price": "Price",
            "customer_id": "Customer ID",
            "country": "Country",
        },
    ),
    "superstore": (
        """Row ID,Order ID,Order Date,Ship Date,Ship Mode,Customer ID,Customer Name,Segment,Country,City,State,Region,Product ID,Category,Sub-Category,Product Name,Sales,Quantity,Discount,Profit
1,CA-2016-152156,11/8/2016,11/11/2016,Second Class,CG-12520,Claire Gute,Consumer,United States,Henderson,Kentucky,South,FUR-BO-10001798,Furniture,Bookcases,Bush Somerset Collection Bookcase,261.96,2,0,41.9136
2,CA-2016-152156,11/8/2016,11/11/2016,Second Class,CG-12520,Claire Gute,Consumer,United States,Henderson,Kentucky,South,FUR-CH-10000454,Furniture,Chairs,Hon Deluxe Fabric Chair,731.94,3,0,219.582""",
        "orders",
        {
            "order_id": "Order ID",
            "timestamp": "Order Date",
            "customer_id": "Customer ID",
            "country": "Country",
            "product_code": "Product ID",
            "category": "Category",
            "product": "Product Name",
            "amount": "Sales",
            "quantity": "Quantity",
        },
    ),
    "amazon-order-report": (
        """amazon-order-id,merchant-order-id,purchase-date,last-updated-date,order-status,sales-channel,product-name,sku,asin,quantity,currency,item-price,ship-country
111-1,,2024-03-01T10:00:00+00:00,2024-03-02T10:00:00+00:00,Shipped,Amazon.com,Tea Kettle,TK-1,B000111,1,USD,29.99,US
111-2,,2024-03-01T11:00:00+00:00,2024-03-02T10:00:00+00:00,Shipped,Amazon.com,Tea Cups,TC-2,B000112,2,USD,19.98,US""",
        "orders",
        {
            "order_id": "amazon-order-id",
            "timestamp": "purchase-date",
            "channel": "sales-channel",
            "product": "product-name",
            "product_code": "sku",
            "quantity": "quantity",
            "unit_price": "item-price",
            "country": "ship-country",
        },
    ),
    "groceries-member-baskets": (
        """Member_number,Date,itemDescription
1808,21-07-2015,tropical fruit
2552,05-01-2015,whole milk
2300,19-09-2015,pip fruit""",
        "baskets",
        {"customer_id": "Member_number", "timestamp": "Date", "product": "itemDescription"},
    ),
    "bakery-transactions": (
        """Transaction,Item,date_time,period_day,weekday_weekend
1,Bread,30-10-2016 09:58,morning,weekend
2,Scandinavian,30-10-2016 10:05,morning,weekend
2,Scandinavian,30-10-2016 10:05,morning,weekend""",
        "baskets",
        {"order_id": "Transaction", "product": "Item", "timestamp": "date_time"},
    ),
    "square-pos": (
        """Date,Time,Category,Item,Qty,Net Sales,Transaction ID,Customer ID,Channel
2024-04-01,09:15:02,Coffee,Latte,1,$4.50,T-1,C-9,Point of Sale
2024-04-01,09:15:02,Bakery,Croissant,2,$6.00,T-1,C-9,Point of Sale""",
        "orders",
        {
            "timestamp": "Date",
            "category": "Category",
            "product": "Item",
            "quantity": "Qty",
            "amount": "Net Sales",
            "order_id": "Transaction ID",
            "customer_id": "Customer ID",
            "channel": "Channel",
        },
    ),
    "chinese-supermarket": (
        """小票号,会员卡号,商品编码,商品名称,销售数量,销售金额,销售日期
T0001,V123,6901,矿泉水,2,3.00,2024-02-01
T0001,V123,6902,面包,1,5.50,2024-02-01
T0002,,6901,矿泉水,1,1.50,2024-02-02""",
        "orders",
        {
            "order_id": "小票号",
            "customer_id": "会员卡号",
            "product_code": "商品编码",
            "product": "商品名称",
            "quantity": "销售数量",
            "amount": "销售金额",
            "timestamp": "销售日期",
        },
    ),
    "etsy-sold-items": (
        """Sale Date,Item Name,Buyer,Quantity,Price,Order ID,Ship Country
03/05/24,Handmade Mug,jane,1,25.00,3001,United States
03/06/24,Tea Towel,joe,2,12.00,3002,Canada""",
        "orders",
        {
            "timestamp": "Sale Date",
            "product": "Item Name",
            "customer_id": "Buyer",
            "quantity": "Quantity",
            "unit_price": "Price",
            "order_id": "Order ID",
            "country": "Ship Country",
        },
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_detects_roles_and_kind(case: str) -> None:
    text, kind, expected = CASES[case]
    header, rows = _table(text)
    detection = detect_columns(header, rows)
    assert detection.kind == kind
    assert detection.roles == expected


def test_shopify_order_total_is_not_a_line_amount() -> None:
    header, rows = _table(CASES["shopify-orders"][0])
    assert "amount" not in detect_columns(header, rows).roles


def test_overrides_win_and_clear_the_column_elsewhere() -> None:
    header, rows = _table(CASES["uci-online-retail"][0])
    detection = detect_columns(header, rows, {"product": "StockCode", "country": None})
    assert detection.roles["product"] == "StockCode"
    assert "product_code" not in detection.roles
    assert "country" not in detection.roles


def test_override_naming_a_missing_column_is_refused() -> None:
    header, rows = _table(CASES["basket-list"][0])
    with pytest.raises(BadParameterError, match="no column called 'Basket'"):
        detect_columns(header, rows, {"order_id": "Basket"})


def test_override_with_text_as_quantity_is_refused() -> None:
    header, rows = _table(CASES["uci-online-retail"][0])
    with pytest.raises(BadParameterError, match="needs numbers"):
        detect_columns(header, rows, {"quantity": "Description"})


def test_override_turns_a_table_into_orders() -> None:
    header, rows = _table("visitor,spend\nv1,10.5\nv2,3.0\n")
    assert detect_columns(header, rows).kind == "orders"
    header, rows = _table("a,b\nx,10.5\ny,3.0\n")
    detection = detect_columns(header, rows, {"customer_id": "a", "amount": "b"})
    assert detection.kind == "orders"


def test_text_only_file_has_no_usable_column() -> None:
    header, rows = _table("note,comment\nhello,world\nfoo,bar\n")
    with pytest.raises(BadFileError, match="No column in this file is usable"):
        detect_columns(header, rows)


@pytest.mark.parametrize(
    ("header", "normalised"),
    [
        ("InvoiceNo", "invoice_no"),
        ("CustomerID", "customer_id"),
        ("Lineitem quantity", "lineitem_quantity"),
        ("实付金额(元)", "实付金额"),
        ("Email (Billing)", "email"),
        ("amazon-order-id", "amazon_order_id"),
    ],
)
def test_normalise_header(header: str, normalised: str) -> None:
    assert normalise_header(header) == normalised
