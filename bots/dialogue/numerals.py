"""Quantities in customer chat: Arabic (full-width too) and Chinese numerals, and where they sit in a message.

Pure functions, no I/O. Values are exact (``Fraction``) so that 半箱 / 1.5箱 / 一箱半 can be reported as
"not a whole quantity" instead of being rounded; only :func:`parse_quantity` narrows to a positive ``int``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

CHINESE_NUMERAL_CHARS = "零〇一二两俩仨三四五六七八九十百千万"
DOZEN = 12  # 一打
# Units a dozen is unambiguous for: single pieces. 一打 of something sold by the 箱 (a case of 24?) is asked.
TAEL = "两"  # 二两: a weight (a tenth of a 斤) — asked as "要几斤", never as "2两是指2斤吗"
PIECE_UNITS = frozenset("瓶 个 支 只 罐 听 条 根 本 双 张 片 杯 份 块 颗 枚 节".split())
# The pieces a dozen (打) counts without a doubt (README rule 9: 个 / 根 / 只 / 张 / 条 …): not a container of the goods
# (a 罐 of tea holds a weighed amount like a 盒 or 袋 — 一打 of it is asked; a bottle or can of a drink is a piece)
DOZEN_UNITS = PIECE_UNITS - {"罐", "杯", "份"}

# 大写数字 (financial numerals: 壹 贰 叁 …, also their traditional forms) → everyday numerals, one to one.
FINANCIAL_NUMERALS = str.maketrans("壹贰貳叁參肆伍陆陸柒捌玖拾佰仟", "一二二三三四五六六七八九十百千")
_TWENTIES = re.compile(r"[廿卅]")  # 廿 = 二十, 卅 = 三十 (廿五 = 25)


def everyday_numerals(text: str) -> str:
    """壹贰叁 → 一二三, 廿五 → 二十五, 卅 → 三十: numerals as :func:`chinese_to_int` reads them."""
    text = text.translate(FINANCIAL_NUMERALS)
    return _TWENTIES.sub(lambda m: "二十" if m.group(0) == "廿" else "三十", text) if "廿" in text or "卅" in text else text


# Units a shop's chat commonly uses; the catalog's own units are added by :class:`QuantityScanner`.
COMMON_UNITS: tuple[str, ...] = (
    "箱",
    "包",
    "瓶",
    "件",
    "桶",
    "袋",
    "个",
    "盒",
    "提",
    "罐",
    "听",
    "斤",
    "公斤",
    "条",
    "支",
    "根",
    "只",
    "份",
    "套",
    "卷",
    "板",
    "排",
    "扎",
    "杯",
    "张",
    "本",
    "双",
    "台",
    "片",
    "捆",
    "车",
    "方",
    # classifiers no catalog here sells by, still never a bare number: 500颗 of a 盒 product is asked (rule 12)
    "颗",
    "粒",
    "枚",
    "节",
    "串",
    "副",
    "盘",
    "壶",
)

_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "仨": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL_PLACES = {"十": 10, "百": 100, "千": 1000}
_ARABIC = re.compile(r"(\d+(?:\.\d+)?)([万千百十]?)")
_ARABIC_MULTIPLIER = {"": 1, "十": 10, "百": 100, "千": 1000, "万": 10_000}  # 3十 = 30, 1万 = 10000


def chinese_to_int(text: str) -> int | None:
    """Value of a Chinese numeral (十二, 二十五, 一百零五, 两百, 三千二, 两万五, 零); None if not well-formed.

    Spoken abbreviations are honoured (三千二 = 3200, 一百二 = 120, 两万五 = 25000). Runs of bare digits such
    as 三四 or 两三 mean "three or four" / "two or three", not 34 or 23, so they return None (vague).
    """
    if not text or any(ch not in CHINESE_NUMERAL_CHARS for ch in text):
        return None
    if text in ("零", "〇"):
        return 0
    total = 0  # the part already multiplied by 万
    section = 0  # the part below 万
    digit: int | None = None
    last_place = 0  # place value last written, for the 三千二 abbreviation
    after_zero = False  # 一百零五: the 零 means "skip a place", so 五 is units, not tens
    prev_was_place = False
    digit_follows_place = False  # 三千二: the last digit came straight after a place character
    for ch in text:
        if ch in ("零", "〇"):
            if digit is not None:
                return None
            after_zero, prev_was_place = True, False
        elif ch in _DIGITS:
            if digit is not None:
                return None  # 三四 / 一二: vague or a code, never a quantity
            digit, digit_follows_place = _DIGITS[ch], prev_was_place
            prev_was_place = False
        elif ch in _SMALL_PLACES:
            place = _SMALL_PLACES[ch]
            if digit is None:
                if ch != "十" or section % 100:
                    return None  # 百 / 千 need a digit; 十 alone means 一十
                digit = 1
            if section and last_place and place >= last_place:
                return None  # 一百一千: places must fall
            section += digit * place
            digit, last_place, after_zero, prev_was_place = None, place, False, True
        else:  # 万
            if total:
                return None
            section += digit or 0
            if not section:
                return None
            total, section = section * 10_000, 0
            digit, last_place, after_zero, prev_was_place = None, 10_000, False, True
    if digit is not None:
        if digit_follows_place and last_place >= 100 and not after_zero:
            digit *= last_place // 10  # 三千二 = 3200, 两万五 = 25000
        section += digit
    return total + section


def parse_number(text: str) -> Fraction | None:
    """Exact value of a written number: Arabic (full-width too, 1.5, 1万), Chinese, 半, 一个半, N打, a sign.

    Returns None when the text is not a number or is vague (三四, 两三). Zero, negative and fractional values
    are returned as they are; whether they make a valid order quantity is :func:`parse_quantity`'s call.
    """
    t = unicodedata.normalize("NFKC", text).strip().replace(" ", "")
    sign = 1
    if t[:1] in ("-", "−", "负"):
        sign, t = -1, t[1:]
    multiplier = 1
    if t.endswith("打"):
        multiplier, t = DOZEN, t[:-1]
    half = Fraction(0)
    if t.endswith("个半") and len(t) > 2:
        half, t = Fraction(1, 2), t[:-2]
    elif t.endswith("半") and len(t) > 1:
        half, t = Fraction(1, 2), t[:-1]
    value: Fraction | None
    if t == "半":
        value = Fraction(1, 2)
    elif (m := _ARABIC.fullmatch(t)) is not None:
        value = Fraction(m.group(1)) * _ARABIC_MULTIPLIER[m.group(2)]
    else:
        n = chinese_to_int(t)
        value = None if n is None else Fraction(n)
    if value is None:
        return None
    return sign * (value + half) * multiplier


@dataclass(frozen=True)
class QuantityMatch:
    """One quantity found in a message. ``value`` None means vague (三四箱, 3-5箱) or a fraction (1/2箱)."""

    start: int
    end: int
    text: str
    value: Fraction | None
    unit: str | None  # as the customer wrote it; 打 is folded into value and leaves None
    marked: bool  # written with a unit or as x3 / *3 / ×3, so it is clearly meant as a quantity
    dozen: bool = False  # written with 打 (value already × 12): unambiguous only for pieces (PIECE_UNITS)


_VERB_DA = r"打(?=包|折|电话|车|算|开|听|扫|工|球|牌|卡)"  # 俩打包带走: 打 the verb, never a dozen
_NUM = rf"\d+(?:\.\d+)?[万千百十]?|[{CHINESE_NUMERAL_CHARS}]+|半"
# Numbers directly followed by these are sizes, times, money or addresses — never an order quantity.
_NOT_A_QUANTITY_AFTER = re.compile(
    r"\s*[x×*]\s*(?:\d|\x00)|"  # 800×800地砖: a dimension, the second number hidden in the name
    r"\s*(?:[a-z]|毫升|升|克|点|号|日|月|年|分|秒|小时|天|周|元|块|毛|角|%|度|楼|层|栋|单元|室|路|岁|折|米|寸|的|那种|斤|平|"
    r"个?(?:人|月|小时|星期|礼拜|钟头))"
)
_SPLIT_INTO = re.compile(r"(?:打包成|分成|分装成|装成|包成)\s*$")  # 帮忙打包成两份: how to pack it, no amount
_PEOPLE_BEFORE = re.compile(r"(?:小朋友|孩子|小孩|客人|同事|朋友|学生|工人|人)(?:们)?(?:刚好|正好|一共|总共|大概|有|来|是)?\s*$")
_NOT_A_QUANTITY_BEFORE = re.compile(r"(?:楼|号|室|栋|单元|路|房|门牌|电话|手机|尾号|编号)\s*$")  # 3号楼502
# An amount given as a bound or an estimate — 20个左右, 最少20个, 大约10箱 — is vague (asked, never ordered).
_APPROX_AFTER = re.compile(r"\s*(?:左右|上下|出头|以上|往上|开外|朝上|以内|以下|之内)")
_APPROX_BEFORE = re.compile(r"(?:最少|至少|最多|起码|顶多|大约|约莫|大概|差不多|将近|接近|不到|不超过|估计)\s*(?:要|来|拿)?\s*$")
_MAX_BARE_DIGITS = 6  # a longer bare digit run is a phone or order number
# 两 as a weight (a tael, 50 g): 二两 / 八两 / 半两 / 3两 — a numeral straight before 两, nothing countable after it.
# 一两桶 / 三两个 (one or two, vague) and 一两天 stay what they were: a unit or a time word follows there.
_TAEL = re.compile(
    r"(?<![\d一二三四五六七八九十百千半两])(?P<num>\d+|[一二三四五六七八九十]{1,3}|半)两(?=\x00|[\s,.!?~、。;:的吧了啊呀呢哦就]|$)"
)


class QuantityScanner:
    """Finds quantities in normalised (NFKC, lower-case) text; build once per unit set and reuse."""

    def __init__(self, units: Iterable[str] = ()) -> None:
        all_units = sorted({*COMMON_UNITS, *(u for u in units if u)}, key=len, reverse=True)
        unit_alt = "|".join(re.escape(u) for u in ["打", *all_units])
        # Numbers that describe the goods, not how many: a unit price (40一袋, 36元/箱, 5块钱一瓶, 每袋40),
        # a pack size (12瓶装, 24装, 24瓶/箱, 一箱有24瓶). Found first and never read as a quantity.
        # (a length, an area or a size per unit — 4米一根 / 2平一箱 — describes the goods the same way)
        price_num = (
            rf"\d+(?:\.\d+)?\s*(?:元|块钱|块|千克|公斤|斤|克|毫升|升|kg|ml|g|l|米|寸|平方|平|mm|cm|m)?|(?:{_NUM})\s*(?:元|块钱|块)"
            rf"|(?:{_NUM})(?:多|来|出头)"  # 两百多一斤
            # 三千八一吨 / 六百八一盒: a round sum said short (X千Y) — never 三百零一瓶 (301 bottles)
            r"|[一二两三四五六七八九]+[百千][一二两三四五六七八九](?=\s*一)"
        )
        self._not_quantity = re.compile(
            rf"(?<![a-z0-9.])(?P<price>(?!\d{{7}})(?:{price_num})\s*(?:一|每|/)\s*(?:{unit_alt})(?!装)"
            # 一袋28块那个腻子: the unit first, then what it costs
            rf"|一\s*(?:{unit_alt})\s*(?:\d+(?:\.\d+)?|[{CHINESE_NUMERAL_CHARS}]+)\s*(?:元|块钱|块)(?!\s*(?:{unit_alt})))"
            # (not 5袋 一车拉过来: a truck is no pack)
            rf"|(?<![a-z0-9.])(?P<size>\d+\s*(?P<u1>{unit_alt})\s*(?:一|每|/)\s*(?!(?P=u1))(?!车)(?:{unit_alt})(?!装))"
            # (not 来俩 装个架子 / 整仨 装袋里: 装 the verb)
            rf"|(?P<pack>(?:\d+|[{CHINESE_NUMERAL_CHARS}]+)\s*(?:{unit_alt})?装(?![个上好修到进在一下袋车箱盒]))"
            # a dimension, two or three sizes joined by × (800×800 / 300x600 / m4×25): what the goods measure
            r"|(?<![a-z0-9.])(?P<dimension>\d+(?:\.\d+)?\s*[x×*]\s*\d+(?:\.\d+)?(?:\s*[x×*]\s*\d+(?:\.\d+)?)?(?:mm|cm|m)?)(?!\d)"
            rf"|(?P<per>每\s*(?:{unit_alt})\s*(?:{_NUM})\s*(?:元|块钱|块|{unit_alt})?)"
            rf"|(?P<content>一\s*(?P<u2>{unit_alt})\s*(?:有|是|装|含)\s*(?:{_NUM})\s*(?!(?P=u2))(?:{unit_alt})?)"
        )
        # Vague amounts with a unit — 几箱, 十几盒, 二十多袋, 十来箱, 几十袋 — are quantities without a value (asked).
        self._vague = re.compile(
            rf"(?:几[十百千]?|[{CHINESE_NUMERAL_CHARS}]+[几来多](?:[{CHINESE_NUMERAL_CHARS}]+)?|\d+[几来多]|好几|[百千]把)\s*(?P<unit>{unit_alt})(?<!包(?=邮))"
            r"(?!人|朋友|同事|孩子|小孩|客人|兄弟|工人|师傅|同学|月|天|小时)"  # 那几个朋友 / 十来个人: people, no goods
            # 一斤多 / 3箱多: a bit over that amount — vague
            rf"|(?:\d+|[{CHINESE_NUMERAL_CHARS}]+)\s*(?P<unit_over>{unit_alt})多(?![少钱块重大长宽厚高久远])"
        )
        # 来个蛋糕 / 再要个 / 俩牛角包 / 各两: one (or two, three) with the number or the unit left out — not the
        # filler 个 of 来个10提 / 要个二十箱, where the amount follows, nor the head of a longer numeral (各二十 /
        # 各两三箱, vague) or of a pair (各一对: two of a 个, asked).
        self._implied = re.compile(
            rf"(?:(?<=[要来订买拿弄带捎做配搬称拉])个(?!月|人|事|问题|电话|地址|\s*(?:{_NUM})\s*(?:{unit_alt})|\s*[百千几]|\s*[一二两三四五六七八九十]+[几来多])|(?<=各)[一两二三](?!\s*(?:{unit_alt})|\s*[\d{CHINESE_NUMERAL_CHARS}对双副])|[俩仨](?!(?!{_VERB_DA})(?:{unit_alt}))(?!个?(?:月|人|天|小时|星期|礼拜|年|钟头|孩子|小孩))"
            # 来箱可乐 / 可乐来箱: a unit right after the verb, nothing between — one of it
            rf"|(?<=[要来订买拿捎带整搬称])(?P<unit>{unit_alt})(?=[\x00\s,，。!！~]|$))"
        )
        # 20公斤的防水涂料 / 5公斤的大米 / 500克一袋的: a size described before the product, not an amount.
        self._spec_of = re.compile(
            rf"(?:\d+(?:\.\d+)?|[{CHINESE_NUMERAL_CHARS}]+)\s*(?:公斤|千克|斤|克|寸|升|毫升)\s*(?:的|那个|那种|那款)(?=\S)"
        )
        self._pattern = re.compile(
            # not inside a code, a size or a fraction (1/2箱); not an ordinal (第3箱); a / between items separates them
            r"(?<![a-z0-9.第写印刻])(?<!\d/)(?<!\d\s/)"  # 蛋糕上写520: words to write, no amount
            r"(?P<mark>[x×*]\s*)?(?P<sign>-|−|负)?"
            rf"(?P<num>{_NUM})(?:\s*(?:-|~|/|到|至)\s*(?P<num2>{_NUM}))?"
            # 4个人 / 3个月: no amount of goods; 满几百包邮: 包 there is 包邮 (free delivery), no unit
            rf"(?:\s*(?P<unit>{unit_alt})(?!人|月|小时|星期|礼拜|钟头|会议室|房间|孩子|小孩|朋友|客人|地方|工地|门店|部门|班|桌|学生|老师|工人|师傅|娃|牌子|品种|颜色|口味)(?<!包(?=邮))(?<!{_VERB_DA})(?<!车(?=拉|送|运|装|带|过来|过去)))?(?P<half>半(?!打))?"
        )

    def not_quantities(self, text: str) -> list[tuple[int, int, str]]:
        """Spans that read as a unit price or a pack size (never a quantity), with which: price / pack."""
        return [(m.start(), m.end(), "price" if _is_price(m) else "pack") for m in self._not_quantity.finditer(text)]

    def find(self, text: str) -> list[QuantityMatch]:
        """Every quantity in ``text`` in order. Chinese numerals count only with a unit or an x mark, so that
        一下 / 一起 / 千万 are not read as numbers; bare Arabic numbers count unless they look like a size,
        time, price, address or phone number."""
        found: list[QuantityMatch] = []
        blocked = [m.span() for m in self._not_quantity.finditer(text)] + [m.span() for m in self._spec_of.finditer(text)]
        for m in self._vague.finditer(text):
            if not any(s < m.end() and m.start() < e for s, e in blocked):
                found.append(QuantityMatch(m.start(), m.end(), m.group(0), None, m.group("unit") or m.group("unit_over"), True))
                blocked.append(m.span())
        for m in _TAEL.finditer(text):  # a weight in 两: never converted to the SKU's 斤 (asked as a unit mismatch)
            if not any(s < m.end() and m.start() < e for s, e in blocked):
                found.append(QuantityMatch(m.start(), m.end(), m.group(0), parse_number(m.group("num")), TAEL, True))
                blocked.append(m.span())
        for m in self._implied.finditer(text):
            if not any(s < m.end() and m.start() < e for s, e in blocked):
                unit = m.group("unit")
                value = 1 if unit else {"个": 1, "一": 1, "两": 2, "二": 2, "三": 3, "俩": 2, "仨": 3}[m.group(0)]
                found.append(QuantityMatch(m.start(), m.end(), m.group(0), Fraction(value), unit, True))
                blocked.append(m.span())
        for m in self._pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in blocked):
                continue
            num, unit, marked = m.group("num"), m.group("unit"), m.group("mark") is not None
            if unit is None and not marked:
                if not num[0].isdecimal() or m.group("num2"):
                    continue
                if len(num) > _MAX_BARE_DIGITS or _NOT_A_QUANTITY_AFTER.match(text, m.end()):
                    continue
                if _NOT_A_QUANTITY_BEFORE.search(text, 0, m.start()):
                    continue
            if unit is None and m.group("half"):
                continue  # 一半 etc.: not a quantity
            if _PEOPLE_BEFORE.search(text, 0, m.start()) or _SPLIT_INTO.search(text, 0, m.start()):
                continue  # 小朋友刚好六个 / 客人一共八个: how many people, no amount of goods
            value: Fraction | None = None
            approximate = _APPROX_AFTER.match(text, m.end()) or _APPROX_BEFORE.search(text, 0, m.start())
            if not m.group("num2") and not approximate:  # 20个左右 / 最少20个: vague, asked (a value of None)
                sign, half = m.group("sign") or "", m.group("half") or ""
                value = parse_number(sign + num + half + ("打" if unit == "打" else ""))
            found.append(
                QuantityMatch(
                    start=m.start(),
                    end=m.end(),
                    text=m.group(0),
                    value=value,
                    unit=None if unit == "打" else unit,
                    marked=marked or unit is not None,
                    dozen=unit == "打",
                )
            )
        return sorted(found, key=lambda q: q.start)


def _is_price(m: re.Match[str]) -> bool:
    """A unit price (40一袋 / 每袋40元), not a size per unit (4米一根 / 50kg一袋): money, or a bare number per unit."""
    if m.group("per"):
        return True
    price = m.group("price")
    return bool(price) and not re.search(r"\d\s*(?:千克|公斤|斤|克|毫升|升|kg|ml|g|l|米|寸|平方|平|mm|cm|m)", price)


_DEFAULT_SCANNER = QuantityScanner()
_REPLY_LEAD = re.compile(r"^(?:要|来|给我|就)+")
_REPLY_TAIL = re.compile(r"(?:吧|了|啊|呀|哈|的|就行|就好|就够了|就可以|[\s.,。!?~])+$")


def parse_quantity_with_unit(text: str, units: Iterable[str] = ()) -> tuple[int, str | None] | None:
    """A reply that is only a quantity — 3, ３, 两, 十二, 一百零五, 1万, 一打, 3箱, 要两箱吧, x3 — as
    (positive whole number, unit as written or None); None for anything else, including 0, negatives, 半,
    1.5 and 三四箱. The unit is reported, not checked: comparing it with the SKU's unit is the caller's call.
    """
    t = unicodedata.normalize("NFKC", text).lower().strip()
    t = _REPLY_LEAD.sub("", _REPLY_TAIL.sub("", t))
    if not t:
        return None
    unit: str | None = None
    value = parse_number(t)
    if value is None:
        found = (QuantityScanner(units) if units else _DEFAULT_SCANNER).find(t)
        if len(found) != 1 or (found[0].start, found[0].end) != (0, len(t)):
            return None
        value, unit = found[0].value, found[0].unit
    if value is None or value.denominator != 1 or value <= 0:
        return None
    return int(value), unit


def parse_quantity(text: str) -> int | None:
    """The positive whole quantity in a reply that is only a quantity (see :func:`parse_quantity_with_unit`),
    else None. None covers both "not a number" and "not a valid quantity" (0, negatives, 半, 1.5); callers
    that must tell those apart use :func:`parse_number`.
    """
    parsed = parse_quantity_with_unit(text)
    return parsed[0] if parsed else None
