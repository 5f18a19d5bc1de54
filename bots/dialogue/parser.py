"""Turn one customer chat message into an order intent (要3箱矿泉水 → 3 × 矿泉水); pure, no I/O after set-up.

It never guesses: two SKUs sharing an alias, a missing quantity, a unit the SKU is not sold in or 半箱
give a :class:`Clarify` with a ready-to-send question in Simplified Chinese, never a pick. Reading a
message: NFKC + lower-case (emoji → space); products = longest alias over jieba tokens, then a substring
scan for aliases jieba split anyway (adjacent mentions sharing SKUs merge: 生抽酱油); quantities
(:mod:`bots.dialogue.numerals`), separators (，、和 跟 还有) and cue words are looked for with products
masked out (加多宝 is no "add" cue); each quantity binds to its nearest product on either side, ties
following the word order the segment starts with.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, TypeAlias

from bots.dialogue.cue_words import cue as cue_list
from bots.dialogue.cue_words import homophone_typos
from bots.dialogue.dialect import from_cantonese
from bots.dialogue.homophones import homophones
from bots.dialogue.intents import (
    AddSameAsLast,
    Cancel,
    Clarify,
    Confirm,
    Correction,
    Line,
    NotAnOrder,
    OrderLines,
    ParseResult,
    Product,
    RemoveItem,
)
from bots.dialogue.numerals import COMMON_UNITS, DOZEN_UNITS, TAEL, QuantityMatch, QuantityScanner, chinese_to_int, everyday_numerals
from bots.dialogue.pinyin_input import dictionary as pinyin_dictionary
from bots.dialogue.traditional import to_simplified
from scrm.core.tokenizer import fresh_tokenizer

if TYPE_CHECKING:
    import jieba  # imported on first use, by scrm.core.tokenizer

_WECHAT_EMOJI = re.compile(r"\[([\u4e00-\u9fffa-z ]{1,8})\]")
_KEEP_SYMBOLS = frozenset("×+~%*")
_FRACTION_SLASH = str.maketrans({"⁄": "/"})  # NFKC turns ½ into 1⁄2: keep it readable as a fraction
_MASK = "\x00"  # normalise_text never keeps control characters, so the mask cannot collide with input
_ALIAS_MIN_FREQ = 10_000  # high enough that jieba keeps an alias whole next to a numeral or a verb
_MAX_ALIAS_TOKENS = 8
_SCAN_CACHE = 64
_SEPARATOR_GAP = 100  # a separator between a product and a quantity counts as this many characters


def _words(words: str) -> re.Pattern[str]:
    """A regex matching any of the space-separated words (kept as lists: they are chat vocabulary)."""
    return re.compile("|".join(words.split()))


_STOCK = _words(
    r"有没有 有木有 有无 还有(?:吗|么|嘛|没|货|多少|的话) (?<!家里)(?<!家)还有\s*\??$ 有货 没货 现货 "
    r"库存 (?<!家里)(?<!家中)(?<!屋里)(?<!工地)(?<!手上)(?<!手头)(?<!个活)(?<!我这)(?<!上回)(?<!上次)还剩 剩多少 有卖 卖不卖 缺货 断货"
)  # not 家里还剩半条: what the customer has
_STOCK_FILLER = re.compile(r"[\s,.!?~、。;:]|请问|你们|您们|你家|老板|现在|目前|还|有|多少|几|吗|么|嘛|呢|啊|呀|吧|了|的")
_PRICE = _words("多少钱 什么价 价格 价钱 怎么卖 几块 单价 多钱 报价")  # 矿泉水多少钱: answered with the stock line (it has the price)
_INQUIRY = _words("多少钱 什么价 价格 价钱 怎么卖 几块 单价 多钱 到哪 什么时候 几时 发货了吗 物流 快递单 运单")
_CONFIRM_WORD = _words("确认 确定 好 对 没问题 是 ok okay 嗯 行 可以 下单 提交 没错 就这样 就这些 要的")
_CONFIRM_ONLY = re.compile(
    rf"(?:{_CONFIRM_WORD.pattern}|订单|一下|吧|了|啊|呀|哈|的|呢|哦|噢|老板|谢谢"
    r"|麻烦|请|[\s,.!~、。;:])+"
)
# Verbs of buying, weighing, bringing and delivering: negated after an item of the draft, the item is dropped
_HANDLING = "拿|买|订|定|送|发|来|整|装|带|配|进|称|拉|运|寄|备|做|留|要|弄|搬|捎|上|给"
_CANCEL = re.compile(
    _words(
        "取消 不要了 不要啦 都不要 算了(?!一?下) 不买了 不订了 不用了 不需要了 不需要啦 退单 撤单 作废 整个订单 整单 全部不要 全都不要"
    ).pattern
    # all of it no longer bought or sent (那些都别送了 / 全都不拿了), the order itself withdrawn (这单撤了吧)
    + rf"|(?:都|全|全部|全都|那些|这些)(?:就)?(?:不|别|甭)(?:用|必)?(?:{_HANDLING})(?:了|啦)"
    + r"|(?:这|那|整)(?:个)?单(?:子)?(?:就|先|也)?(?:撤|退|取消|作废|不要|算了|免了|删)"
    # 订单给我删了吧 / 刚下的单不作数了 / cancel掉
    + r"|(?:订单|单子?)(?:给我|帮我|就|先|也)*(?:删|撤|作废|作费|取消)|单(?:子)?(?:就|也)?不(?:作数|算数|算)了|cancel"
    # all of it withdrawn (这次订的全部先撤销 / 刚下的那些统统不要 / 不下了 全撤 / 这单别弄了 / 一样都不要了)
    + r"|撤销|全部撤|全撤|统统不要|一样都不(?:要|订)|一个都不要|都不要了|不下了|别下了|当我没(?:有)?说过|订单取消|取消订单"
    + r"|(?:这|那)(?:一)?单(?:子)?\S{0,3}?(?:别|不用)(?:弄|做|发|送|下)了?"
)
_CANCEL_WHOLE = re.compile(
    r"订单取消|取消订单|全部撤|一个都不要|一样都不(?:要|订)|当我没(?:有)?说过|别下了"
    # the order itself pointed at (蛋糕和面包那单 都不要了 / 整个单子都撤掉 / 这单作废吧)
    r"|(?:那|这|整|整个|这个|那个)(?:单|订单|单子)\s*\S{0,3}?(?:都|全|就)?(?:不要|取消|撤|作废|作罢|算了|不订|不买|不做|退|别做|别送|别发)"
    r"|撤回订单|订单\S{0,3}(?:退|撤|作罢|作废)|(?:全部|都)作罢|刚下的(?:那个|单)?\S{0,2}撤|^全(?:都|部)?退了|(?:下|订)的单(?:子)?\S{0,3}(?:退|撤|取消|作罢|不要)|预订(?:就)?(?:作罢|取消|退了|不要了)|(?:那些|这些|全部|所有)(?:都|全)(?:不用|不要)(?:订|做|送)?了|(?:这次|我)的?(?:预订|订单|单子?)(?:都|全)?(?:撤|退|取消|不要|删)|单子?(?:给我)?删掉?|(?:之前|刚才)?(?:下|订)的(?:那些|那单|东西)?(?:都|全|全都)(?:撤|退|取消|不要)|(?:下的|订的)?单(?:子)?(?:全都|全部|都|全)(?:退|撤|取消|不要|作废)|^单子?(?:就)?退了"
    # everything taken back (所有的都撤回吧 / 全部东西都退了)
    r"|(?:所有|全部)(?:的)?(?:东西)?都(?:撤|退|不要|取消|算了|别)"
)
_REMOVE = re.compile(
    _words(
        "(?<!要)不要 去掉 删掉 删除 删了 拿掉 取消 别要 减掉 退掉 撤掉 撤了 划掉 划了 免了 剔除 移除 不用 不需要 用不着 拿出去 拿出来 "
        "少要 少拿 少来 少订 减少 (?:别|不|不要)算(?:进去|上|在内|里面)"
    ).pattern
    # an ordering or delivery verb negated, with 了 for "no longer": 先不拿了 / 别送了 / 不买了 / 也不来了 / 不称了
    + rf"|(?:不|别|甭)(?:用|必)?(?:给我|帮我|给)?(?:{_HANDLING})(?:了|啦)"  # 牛奶别给我装了
    # …or put off for now without 了: 先别送 / 这次不进 / 暂时不拿
    + rf"|(?:先|暂时|暂|这次|这回|今天)(?:就)?(?:不|别|甭)(?:用|必)?(?:{_HANDLING})"
    # 把碧螺春去了 / 蛋挞去掉吧 / 盖碗那项去了吧: the item struck off
    + r"|(?<=\x00)\s*(?:那|这)?(?:项|个|样|袋|盒|箱|桶|罐|饼|套)?\s*(?:给我|帮我)?\s*(?:先)?去(?:了|掉)|撤下(?:来)?"
    # 再减一箱 / 减掉2箱 / 少拿一箱: less by an amount — a removal with an amount, asked (by? down to?)
    + r"|减(?:掉|少|去)?(?=\s*\x00)"
)
# 那两卷 / 这3箱 right after the product: the line already in the draft pointed at, not an amount to remove.
_POINTED = re.compile(r"\x00\s*(?:那|这)\s*$")
_CORRECTION = _words("改成 改为 改到 换成 换为 调成 调到 调整为 变成 修改 改(?!天|日|期) 减到 减成 降到 加到 增加到 补到")
_BARE_CORRECTION = re.compile(
    r"(?:我|想|要|帮我|请|麻烦)*(?:修改|改一下|改下|改)(?:订单|一下|下)?"
    r"(?:吧|了|啊)?"
)
_NEGATE, _REAFFIRM = _words("不要 不是"), _words("要 是 改")
_RESTATE = _words("应该是 应该要 其实是 其实要 我是说 我说的是 实际是 实际要 实际上要")
_SAID_WRONG = _words("说错 写错 打错 搞错 记错 弄错 算错 报错 少报 多报 手滑 少写 多写 写少 写多 说少 说多")
_SIZE_MARK = re.compile(r"^(?!#).*\d")  # a size with its unit (8寸, 550ml), not a bare number
_KIND = re.compile(r"([\u4e00-\u9fff]{1,2})装?的")  # 小瓶的 / 生的: a kind described, not named
_ENOUGH = re.compile(r"^\s*(?:就够|就行|就好|就可以|够了|就成)")  # 不要3盒了 2盒就够: the second amount is meant
# 多 + a verb: more; 顺便 / 顺带 / 捎带: "while you are at it", one more thing on the order; 也各要 / 也都来: also, each
_ADD_CUE = _words(
    "再 还要 还需要 还想(?:要|加|来) 还得(?:要|来|拿|订)? 追加 另外 加多 "
    "多(?:给我|帮我)?(?:加|来|要|拿|买|订|整|带|给|弄|称|搬|做|烤) 也(?:各|都)?(?:得|要|来|拿|需要) "
    "加(?!急|班|油) 顺便 顺带 捎带 捎上 补充 也(?:给我)?(?:带|拿|捎)上? "
    "(?:补|添)(?:上|个|点)?(?=\\s*(?:\\d|[一二两三四五六七八九十俩仨半])|\\s*$)"
)
# …or after the item, as the message ends (石膏板20张也给我带上 / 抽纸一提也捎上吧): also that, on top of the draft
_ADD_AFTER = re.compile(
    r"[\s,，]*(?:(?:也|还)(?:给我|帮我|得|要)?(?:一起|一块)?(?:带|拿|捎|装|加|算|送|配|添)(?:上|进去|过来)?|(?:添|加|捎|带)上)[\s吧啊哈呀了]*$"
)
_ADD_CUE_BEFORE = re.compile(rf"(?:{_ADD_CUE.pattern})\s*(?:{_HANDLING}|补)?\s*$")  # 雪碧多来一箱 / 蛋挞再补6个
# 我是…上回在你家买过米的那个: a past purchase describing who is writing, no report of an order
_WHO_I_AM = re.compile(r"(?:买过|订过|要过|拿过|买了|订了)[^\s,，。!！?？]{0,6}?的(?:那个|那位|老顾客|老客户|人)")
# 我昨天买了3箱: a report, not an order (送到了打我电话: what to do when it comes, no report)
_PAST = _words("买了 订了 下了单 下单了 收到了 送到了(?!\\S{0,2}(?:打|叫|喊|给我|告诉)) 买过 订过 要过 拿过")
# 上次买的 / 昨天订的 / 收到的: goods of an earlier order — its amount (买的2饼) and its verb order nothing now.
_PAST_REF = re.compile(r"(?:买|订|拿|下单|收到|送来|送)(?:了|的)")
_PAST_AMOUNT = re.compile(r"(?:买|订|拿|下单|收到|送来)的\s*$")
# An earlier order named first: 上次买的 / 昨天订的 / 之前送来的 / 上回拿的
_PAST_OPENING = re.compile(r"(?:上次|上回|之前|以前|昨天|前天|那天|上周|上个月|刚才|早上)\S{0,4}?(?:买|订|拿|下单|收到|送来|送)的")
# 矿泉水送了没 / 发了吗 are not orders; 配 is an accessory to go with (再配6个杯子)
_ORDER_CUE = _words("要 来 买 订 拿 下单 加 给我 整 搞 购 配 准备 备 预留 留 帮我做 称 捎 带")  # 泡芙多准备点: an amount asked
_SEPARATOR = _words(
    r"[,!?;:、。~/\n] (?<!\d)\. \.(?!\d) 和 跟 还有 以及 另外 外加 加上 再来 再加 "
    r"再要 还要 然后 及 与 同(?!样|学|事|意|时|一)"
)
# 大米和面粉各2袋 / 可乐和水都要3箱 / 都给我来4个 / 每样一箱 / 分别两袋 / 一样来两箱 / 全要2箱: one amount for
# every product before it
_EACH = re.compile(
    r"(?:各自|各|都|也|全|全部|统统|通通|一律|统一|数量一样[,，]?|每一?[样种款]|每个品种|分别|一样|同样|一[种样款]|each)(?:给我|帮我|再)?(?:要|来|拿|是|买|订|整|弄|称|搬|带|送|配|拉|运|寄|发|装|加|添|补)?\s*$"
)
# Between products that share one amount (大米和面粉各2袋 / 可乐雪碧都要3箱 / 蛋挞跟泡芙同样12个): a joiner, a sign or nothing
# (a size may stand before the next name: 2.5的线和4平方的线各3卷)
_SHARING_JOINER = re.compile(
    r"[\s,、的/]*(?:也要|也来|也)?[\s,、/]*(?:和|跟|与|及|同|以及|还有|加|外加)?[\s,、/]*(?:[a-z]*\d+(?:\.\d+)?(?:[a-z]+|寸|毫升|升|公斤|千克|克|平方|平)?)?[\s的]*"
)
# …and before the products, only the words that cannot mean "also" (各来一箱可乐雪碧 / 都要两箱)
_EACH_FIRST = re.compile(r"(?:各|都|全都|每样|每种)(?:给我|帮我|再)?(?:要|来|拿|买|订|整|弄|称|搬|带|送|配)?\s*$")
_INTERJECTION = "嗯呃额唉哎啊哦噢诶咦"
_HESITATION = rf"[{_INTERJECTION}]+[\s.…]*"
# 莫搞错了 / 别写错了 / 千万不要弄错: a slip warned against, none owned — never a retraction
_NOT_WARNED = r"(?<![莫别])(?<![莫别][搞弄写打记看算说报])(?<!不要)(?<!千万)(?<!可别)"
# A message that takes back what it just said: 要2袋大米…不对，改成4袋 / 3箱可乐，不是，4箱.
_RETRACT = re.compile(
    _NOT_WARNED
    + "(?:"
    + _words(
        "不对 不是 错了 说错 讲错 打错 写错 搞错 看错 记错 弄错 算错 报错 少报 多报 说少 说多 写少 写多 手滑 说反 更正 纠正 "
        "哦不 噢不 不不 算了(?!一?下) 应该是 我是说 我说的是 其实是 其实要 实际上要 记岔 说岔 搞岔 看岔"
    ).pattern
    + ")"
    # by shape: an interjection then 不 (嗯不 / 呃…不), a 不 standing alone between two amounts (5方 不 6方), and
    # 还是 … 吧 (5箱 嗯…还是6箱吧) — the amount after it is the one meant.
    + r"|(?:嗯|呃|额|唉|哎|啊|哦|噢)[\s.…]*不(?=[\s,.…!]|$)|(?<=[\s,.…])不(?=[\s,.…])|还是(?=[^,.!?;]*吧)"
    # an interjection standing alone between two amounts of one product (方便面2箱 呃 3箱吧): a hesitation, the
    # amount after it is the one meant — never beside a second product (大米2袋 嗯 可乐3箱 is two items).
    + rf"|(?<=[\s,.…]){_HESITATION}(?=[\s,.…])"
    # run together, between two amounts (方便面2箱呃3箱吧 / 河沙5方不6方 / 芝士蛋糕1个嗯不2个)
    + r"|(?<=\x00)(?:[嗯呃额唉哎啊哦噢]+不?|不)(?=\x00)"
    # an apology before the amount meant (蛋挞要六个 不好意思 是八个)
    + r"|不好意思(?=[\s,，。]*(?:是|要|应该))"
    # an interjection, then 改 (8寸蛋糕1个 哦改10寸的): the size or amount after it is meant
    + r"|(?<=[\s,，。])[哦噢啊呃嗯额]\s*(?:改|换)(?:成|为|一下)?|(?<=[\s,，。…])[哦噢]\s*是(?=\s*\x00)"
    # sorry, then the amount meant (排水管拿8根 sorry 12根)
    + r"|sorry(?=[\s,，。]*\x00)"
    # "wait", then the switch or the amount meant (来一盒碧螺春 等下 换大红袍 一盒 / 生普来3饼，等下，要4饼)
    + r"|等(?:一)?下|等等(?=[\s,，。…]*(?:换|是|要|改|还是|\x00))"
)
# The words of a retraction (not its shapes: a lone 不, a pause): what may take back a product named before it.
# 不是 only when set off and followed by what is meant (不是，是雪碧): 可乐2箱 不是雪碧 says which one, it is cola.
_RETRACT_WORD = re.compile(
    _NOT_WARNED
    + "(?:"
    + _words(
        "不对 错了 说错 讲错 打错 写错 搞错 看错 记错 弄错 算错 报错 少报 多报 手滑 更正 纠正 "
        "哦不 噢不 不不 应该是 我是说 我说的是 其实是 其实要"
    ).pattern
    + ")"
    + r"|不是[\s,.!~、。]+(?=是|要)|(?<=[啊哦噢呃嗯额])\s*不是|不好意思(?=[\s,，。]*(?:是|要|应该))"
)
# Negation that scopes over its own segment of a message that orders something else (大米2袋，油先不要).
_NEGATED = re.compile(
    _words(
        "不要 不用 先不 暂时不 暂不 (?<![分特区告性派识])别(?![的家人处忘]) 去掉 除了 除开 不需要 不买 不订 不拿 就算了 "
        "算了(?!一?下) 不必 甭 不含 不包括 免了 省了 这回不 不打算 不考虑 不想要 不想买 不想订"
    ).pattern
    + r"|(?:家里|家中|店里|屋里|仓库|工地上?)还?(?:有|剩)"  # 油家里还有: there is some at home — not wanted now
    + r"|暂时(?:还)?(?:有|够)"  # 鸡蛋暂时还有
    + r"|(?:家里|家中|屋里|仓库)\S{0,2}翻出"  # 家里翻出来一盒没拆的
    + r"|(?:家里|家中)\S{0,2}(?:刚)?买(?:了|过)"  # 水不用 家里刚买了
    + r"|(?:^|(?<=[\s,，。]))不是(?=\x00)"  # 不是给水管哈 排水管8根: not that product, this one
    + r"|(?:手上|手头|上个活|上回|上次)\S{0,4}?还(?:有|剩)"  # 上个活还剩大半盒
    + r"|还没(?:(?:喝|吃|用|卖|烧)完|开封|拆(?:封)?|打开)"  # 上回那几箱还没喝完呢 / 上回买的还没开封: some left from before
    + r"|剩(?:的|下)?(?:还有|不少|挺多|好多)"  # 上次剩的还有
    + r"|(?:我|我们|咱)?自己(?:家)?(?:有|带|准备|解决|买)"  # 沙子我自己有 / 螺丝我们自己带: the customer supplies it
    + r"|(?:不|别)(?:拉|送|带|装|整|配|发)"  # 沙子这次不拉 / 油别带: an ordering or delivery verb negated
    # put off or not needed (油等下次 / 油下次吧 / 泡芙没必要 / 油用不着 / 油不着急): that item is not wanted now
    + r"|没必要|用不着|不着急|不急|等下次|下次(?:吧|再|买|要|订)|改天|回头再"
)
_OWN_STOCK = re.compile(r"(?:家里|家中|屋里|店里|仓库|工地上?|手上|手头|上个活|上回|上次)\S{0,4}?(?:还?(?:有|剩)|翻出)")
# What the customer still has from before, said as the reason an item is left out (面粉2袋 油这回就不拿了 上次的还剩半桶):
# the clause asks nothing about stock nor about an earlier order
_LEFTOVER_CLAUSE_BREAK = re.compile(r"[\s,!?;:、。~]")
_LEFTOVER = re.compile(
    r"(?:上次|上回|之前|以前|上个月|家里|屋里|工地|柜子里)\S{0,8}?"  # not 店里 / 仓库: the shop's, asked
    r"(?:还(?:有|剩)|还没(?:(?:吃|喝|用|卖|烧)完|开封|拆(?:封)?|打开)|剩(?:的|下)?(?:还有|不少|挺多|好多))"
)


_DECIDED_AFTER = re.compile(r"再(?:说|定|订|买|找你|告诉|联系)")


def without_leftovers(masked: str) -> str:
    """``masked`` with each clause that states what is left from before blanked, when another clause remains."""
    spans = []
    for m in _LEFTOVER.finditer(masked):
        start = max((k.end() for k in _LEFTOVER_CLAUSE_BREAK.finditer(masked, 0, m.start())), default=0)
        end = next((k.start() for k in _LEFTOVER_CLAUSE_BREAK.finditer(masked, m.end())), len(masked))
        if not _DECIDED_AFTER.search(masked, start, end):  # 我看看家里还剩多少油再说: a check before deciding, kept
            spans.append((start, end))
    if not spans or sum(b - a for a, b in spans) >= len(masked.strip()):
        return masked
    chars = list(masked)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


_CLAUSE_END = frozenset(" ,.!?;:、。~\n")
_DECIMAL_POINT = re.compile(r"\d\.\d")  # 32.5: a point inside a number ends no clause
_ITEM_JOINERS = frozenset("和 跟 还有 以及 另外 外加 加上 再来 再加 再要 还要 及 与 同 、".split())
_VAGUE_AMOUNT = re.compile(r"^(?:一些|一点|些|点儿?|几(?=[\u4e00-\u9fff]{2}))|(?:之类的?|什么的|等等?)$")
_NOT_AN_ITEM = _words(
    "明天 今天 后天 昨天 上午 下午 晚上 中午 早上 尽快 马上 快点 地址 电话 送到 送过来 店里 发票 谢谢 麻烦 老板 一样 上次 照旧 老样子 "
    # how to hand it over, where to (人民路88号), what one costs (15块一个的): no goods
    r"打包 带走 包装 到[\u4e00-\u9fff]{1,6}[路街道巷]\d+ [\u4e00-\u9fff]{0,6}[路街道巷弄]\d+(?:号|弄|栋|楼)? \d+(?:块|元)钱?一 "
    # paying and loading, said beside the order (钱月底跟上月的一起结 / 跟前面的一车拉)
    r"一起结 一块结 结账 月结 付款 上月 前面的 一车 这车 那车 同一车 "
    # with the rest of the order (跟刚才的放一块儿送 / 跟其他的一起拿 / 跟前面那单一起送), and who it is for (一个自己用一个给我妈)
    r"(?:刚才|其他|其它|前面|之前|上面|别的)\S{0,4}?(?:一起|一块|放一块) 自己(?:用|喝|吃|留|要|泡) "
    r"给我?(?:妈|爸|爷爷|奶奶|外婆|姥姥|老婆|老公|孩子|朋友|同事|领导|客户) (?:拿去)?送人 送礼 "
    r"(?:跟|和)(?:你|您)(?:说|讲)(?:一声|哈|下|一下)? ^(?:你|您)(?:说|讲) 说一声 "
    # rooms and what is done in them (客厅跟卧室都要刷一遍): where the goods go, no goods
    r"客厅 卧室 厨房 卫生间 阳台 房间 院子 (?:刷|贴|铺|装)一遍 打包成 分成 装成"
)
# When: a day, a part of it, an hour (明早来拿 / 下午送过来 / 十点左右): never the name of goods
_WHEN = (
    r"(?:今|明|后|昨|大后)(?:天|早|晚|儿)(?:上午|下午|早上|晚上|中午|一早)? 早上 上午 中午 下午 晚上 傍晚 一早 "
    r"(?:\d+|[一二两三四五六七八九十]+)点(?:半|钟|左右)?"
)
_FILLER_HEAD = _words(
    "那个 这个 (?:跟|和|向|找)(?:你|您) 预定 预订 "
    "老板 你好 您好 麻烦 请 帮我 给我 我们 我 想 要 来 买 订 拿 送 再 还 需要 下单 购买 整 搞 加 配 一下 那 就 "
    "(?:带|捎|拿|装|加|算|添|补)上 追加 多做 多烤 带 捎 称 补 添 帮忙 帮 备 留 准备 顺便 也 都 另外 加多 多 " + _WHEN
)
_FILLER_TAIL = _words(
    "过来 来 吧 了 啊 呀 哈 呢 哦 嘛 谢谢 一下 送 给我 就行 就好 可以吗 行吗 吗 要 呗 拿 取 自取 来拿 来取 过来拿 过来取 送来 左右 " + _WHEN
)
_LEAD_FILLER = re.compile(rf"^(?:[\s的]|{_FILLER_HEAD.pattern})+")
_TRAIL_FILLER = re.compile(rf"(?:[\s的]|{_FILLER_TAIL.pattern})+$")
_HAS_WORD = re.compile(r"[a-z\u3400-\u9fff]")
# What follows "N个/N条" in chat that is not merchandise: never reported as an unknown product.
_GOES_WITH = re.compile(r"配(?:那个|这个|我的|我家的|家里的)?\s*$")
_WRITTEN_ON = re.compile(r"\s*上(?:面|边)?(?:写|插|放|画|印|摆|加)")
_FOR_WHOM = re.compile(
    r"\s*(?:(?:自己|我)(?:用|喝|吃|留|泡|要)|给(?!我来|我拿|我送)|送人|拿去|留着|分给|孝敬|(?:打|砌|铺|刷|贴|装|做)(?!\d)[\u4e00-\u9fff]{1,3}(?:\s|$|一个))"
)  # 一个打地坪一个砌墙
_NOT_A_PRODUCT = tuple(
    "人 问题 事 消息 信息 电话 地址 订单 发票 照片 图片 视频 语音 链接 月 天 小时 点 号 次 周 星期 年 分钟 钱 块 "
    "确认 核对 结账 付款 喝 吃 聚".split()
)
# After a separator, a kind (大瓶的 / 4平方的 / 2.5的) and straight after it an amount: a further kind of a product
# named before (矿泉水要小瓶的5箱 大瓶的2箱).
_KIND_AMOUNT = re.compile(
    r"[\s,、;]+(?P<kind>(?:[\u4e00-\u9fff]{1,3}|[a-z]*\d+(?:\.\d+)?(?:[a-z]+|寸|平方|平|毫升|升|克)?)的)"
    r"(?=\s*(?:要|来|拿)?\s*(?:\d+|[一二两三四五六七八九十俩仨]+)\s*[\u4e00-\u9fff])"
)
# What a shop puts in with the goods when asked (蛋糕一个 插6根蜡烛 / 配4套刀叉 / 要2个袋子): an instruction for
# the order, not a product of its own — its number is no quantity and it is never "not found" (unless the
# catalog sells it, when it is a product like any other and never reaches this list).
_WITH_THE_GOODS = re.compile(r"蜡烛|刀叉|叉子|餐具|纸盘|盘子|生日帽|帽子|勺子|吸管|筷子|袋子|塑料袋|手提袋|贺卡|卡片")
# When or how it comes, said between an item and a "not" (…两吨周四上午到就行不用太早): the "not" is about the delivery
_DELIVERY_SAID: Final = re.compile(r"送|到(?!了)|上午|下午|晚上|早上|中午|周[一二三四五六日天末]|星期|礼拜|有空")
# "Not that, this instead" (泡芙不要 换成蛋挞4个): what follows is the order
_INSTEAD: Final = re.compile(r"(?:不要|不用|别要|不买|不拿)(?:了|啦)?[\s,，]*(?:换成|换为|改成|改为|换)")
# An amount said before, declared void (前面打的2斤不算 / 刚才说的5箱作废): the other amount stands
_VOIDED: Final = re.compile(
    r"[\s,，。;；]*(?:前面|刚才|刚刚|之前|上面|开始|一开始)(?:说|打|写|报|发|讲)的\s*(?:\d+|[一二两三四五六七八九十俩仨]+)\s*[\u4e00-\u9fff]?"
    r"\s*(?:不算|作废|无效|不作数|不要了)(?:了|哈|啊)?"
)
_KINDS_COUNTED: Final = re.compile(r"(?:这)?[两二三俩仨](?:个|种)?(?:尺寸|规格|口味|牌子|款式)(?=[\s,，]*(?:各|都|每))")
_COUNT_WORDS: Final = {"两": 2, "二": 2, "俩": 2, "三": 3, "仨": 3}
_SPEC_WORD = r"\d+(?:\.\d+)?(?:ml|l|kg|g|寸|毫升|升|公斤|千克|克|平方|平)?"  # a size as written (42.5, 8寸, 550ml, 4平方)
_SPEC_TOKEN = re.compile(r"[a-z]*\d+(?:\.\d+)?(?:[a-z]+|寸|毫升|升|公斤|千克|斤|克|平方|平)?")
_PER_PACK = re.compile(r"(\d+|[一二两三四五六七八九十]{1,3})\s*[\u4e00-\u9fff]\s*(?:一|每|/)\s*[\u4e00-\u9fff](?!装)")  # 12瓶一箱
_PACK = re.compile(r"(\d+|[一二两三四五六七八九十]{1,3})\s*[\u4e00-\u9fff]?装")  # 8个装 / 六个装 / 24装: a pack size
# Between a product and its amount in a run-on (蛋挞6个 / 蛋挞要6个 / 广式的要3盒 / 水泥要复合的20袋): at most a verb,
# a kind or 的, no sign.
_GAP_WORDS = re.compile(r"的?(?:先|再|就|也)?(?:要|来|拿|买|订|整|称)?(?:[\u4e00-\u9fff\d.]{1,4}?的)?(?:共|一共|各|都)?")
_BARE_NOT = re.compile(r"(?:不要|不用|别要|别拿|莫要|不拿)")
_NOT_THEN_ITEM = re.compile(
    r"(?<=\x00)(?:就|也|先|这次|暂时)?(?:不要|不用|不需要|算了|别拿|别要|不买|不订)(?:了|啦)(?=\x00)"
    # 螺丝钉这次先不拿石膏板20张: "for now not" said after the item, then the next one
    r"|(?<=\x00)(?:就|也|先|这次|这回|暂时)+(?:不要|不用|不拿|不买|不订|别拿|别要)(?=\x00)"
    # 要十个蛋挞不要泡芙再要三个可颂: "more" after a product said "not" opens the next item
    r"|(?<=\x00)(?=再(?:要|来|拿|加|买|带|捎|整)|还要)"
    r"|(?<=\x00)(?:就|也|先|这次|暂时)?(?:别拿|别要|不要|不拿)(?=\d)"  # 2.5的线别拿4平方的拿3卷
    # 鸡蛋一盒就行鸭蛋不要: "that is enough" ends the item before the next one
    r"|(?<=\x00)(?:就行|就好|就够了?|就可以|够了)(?=\x00)"
    # 不要大瓶的要小瓶水3箱: "not" a kind opening the message, then what is wanted instead
    r"|^(?:不要|不用|别要)[^\x00\s,]{1,4}?的(?:了|啦)?(?=要|换|来|拿|只要)"
)
_NOT_FIRST = re.compile(r"(?:不要|不用|别要|不是)")  # 不要可乐了换雪碧3箱: the product "not" opens the message with
# What starts a new clause right after an item in a run-on: the next product (蛋挞6个泡芙…), "not" (芝士蛋糕一个不要
# 水果的), or a short word or kind and then "not" or "later" (漆不用了 / 生的不要 / 普洱下次再说 / 漆的话下周再看).
# Anything else (a kind 小瓶的, 过来, 能刷几平, 吗) stays with the item, as it did.
_NEW_CLAUSE = re.compile(
    r"(?:先|就|也|暂时|这次|这回)?(?:不要|不用|不需要|别|甭|不买|不订|不拿)"
    r"|[^\x00\s,]{1,4}?(?:就|也|先|这次|暂时)?(?:不要|不用|不需要|算了|不买|不订)"
    r"|[^\x00\s,]{1,4}?(?:的话|下次|下回|下周|过几天|过两天|以后|回头|再说|再看)"
)
_CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")
_CJK_WORD = re.compile(r"[\u4e00-\u9fff]{2,}")
_SIZED_NOUN = re.compile(r"\s*(?:的|那种|那款)?\s*([\u4e00-\u9fff]子?(?![\u4e00-\u9fff]{2})|[\u4e00-\u9fff]{2}(?=的))")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")


# List markers are not quantities: ① ② … (NFKC would make them digits) and "1." / "2、" / "(3)" at the start of
# a line — or anywhere, once the message starts with item 1 (1.矿泉水3箱 2.可乐2箱).
_CIRCLED = re.compile("[\u2460-\u249b\u24eb-\u24ff\u2776-\u2793\u3251-\u325f\u32b1-\u32bf]")
_LIST_MARKER = r"(?:[(（【\[]?\d{1,2}\s*[.、)）:：】\]]|#\d{1,2}(?=\s)|(?<![a-z])[a-f][)）](?=\s*[\u4e00-\u9fff]))(?!\d)"
_KEYCAP = re.compile("[0-9#][\ufe0f]?\u20e3[\ufe0f]?")
_LINE_MARKER = re.compile(rf"(?m)^[ \t]*{_LIST_MARKER}")
_FIRST_MARKER = re.compile(r"^\s*(?:[(（【\[]?1\s*[.、)）:：】\]]|#1\s|a[)）])")
# …and a bracketed number, wherever it stands (（1）4平方电线 2卷（2）2.5平方电线 4卷 / 【1】白牡丹 1饼【2】…)
_BRACKET_ONE = re.compile(r"[(（【\[]1[)）】\]]\s*\S")  # 还要\n（1）泡面两箱（2）…: a numbered list after a first line
_INLINE_MARKER = re.compile(rf"(?:^|(?<=\s)){_LIST_MARKER}|[(（【\[]\d{{1,2}}[)）】\]]")


def strip_list_markers(text: str) -> str:
    """① / 1. / 2、 / (3) item markers → a separator, so that their numbers are never read as quantities."""
    text = _KEYCAP.sub("、", _CIRCLED.sub("、", text))  # 1⃣️ / 2️⃣: an emoji number used as a marker
    t = unicodedata.normalize("NFKC", text)
    if "\n" in t and len(_LINE_MARKER.findall(t)) >= 2:
        t = _LINE_MARKER.sub("、", t)
    elif _FIRST_MARKER.match(t) or _BRACKET_ONE.search(t):
        t = _INLINE_MARKER.sub("、", t)
    return t


# 十寸 / 八寸 / 四平方: a size written in Chinese numerals reads as the catalog writes it (10寸), so it settles
# an ambiguous name the same way; never a quantity either way (寸 / 平方 / 毫升 are no units goods are counted in).
_CHINESE_SIZE = re.compile(r"(?<![一二两三四五六七八九十百零])([一二两三四五六七八九十百零]{1,5})(?=寸|平方|毫升)")


_DIMENSION_X = re.compile(r"(?<=\d)\s*[x*]\s*(?=\d)")  # 300x450 / 300*450 is written 300×450, as catalogs do


def _size_digits(t: str) -> str:
    t = _DIMENSION_X.sub("×", t)
    return _CHINESE_SIZE.sub(lambda m: str(n) if (n := chinese_to_int(m.group(1))) is not None else m.group(1), t)


def normalize_text(text: str, keep: Container[str] = ()) -> str:
    """NFKC, lower-case, traditional → simplified characters and financial numerals (壹, 廿) → everyday ones;
    list markers (①, 1.) → a separator; emoji, control characters and WeChat ``[微笑]`` codes → one space (a
    bracketed word in ``keep`` — e.g. a catalog alias, [矿泉水] — stays as the word); whitespace collapsed and
    trimmed."""
    t = from_cantonese(to_simplified(from_cantonese(strip_list_markers(text))).lower()).translate(_FRACTION_SLASH)
    t = _size_digits(everyday_numerals(t))
    t = _WECHAT_EMOJI.sub(lambda m: f" {m.group(1)} " if m.group(1) in keep else " ", t)
    kept = "".join(ch if ch in _KEEP_SYMBOLS or unicodedata.category(ch)[0] in "LNP" else " " for ch in t)
    kept = _ELLIPSIS.sub(" ", kept)  # 小餐包8袋……6袋就行了: a pause, never a decimal point
    kept = _MU_FOR_MEI.sub("没", kept)  # 还有20个木 / 发了木: 木 typed for 没 closing a question
    return re.sub(r"\s+", " ", kept).strip()


_ELLIPSIS = re.compile(r"\.{2,}|。{2,}")
_MU_FOR_MEI = re.compile(r"(?<=[有了个箱袋桶盒瓶包提斤根张片卷饼罐])木(?=[\s?？!！。~啊呀]*$)")


@dataclass(frozen=True)
class Mention:
    """A product named in a message: where, as written (normalised), and the SKUs it can mean."""

    start: int
    end: int
    text: str
    skus: tuple[str, ...]


@dataclass(frozen=True)
class Survey:
    text: str  # normalised
    masked: str  # products and quantities blanked out, for cue words
    mentions: list[Mention]
    quantities: list[QuantityMatch]
    not_quantities: list[tuple[int, int, str]]  # (start, end, "price" | "pack")


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    text: str
    skus: tuple[str, ...]


@dataclass(frozen=True)
class _Scan:
    text: str
    masked: str  # text with product and quantity spans masked, for cue words
    mentions: list[_Mention]
    quantities: list[QuantityMatch]
    separators: list[tuple[int, int]]
    specs: tuple[QuantityMatch, ...] = ()  # bare sizes of the catalog's names (42.5, 550), kept out of quantities

    def segment(self, start: int, end: int) -> tuple[int, int]:
        """Bounds of the separator-delimited segment around [start, end)."""
        left = max((e for s, e in self.separators if e <= start), default=0)
        right = min((s for s, e in self.separators if s >= end), default=len(self.text))
        return left, right

    def separators_between(self, start: int, end: int) -> int:
        return sum(1 for s, e in self.separators if s >= start and e <= end)


_Element: TypeAlias = _Mention | QuantityMatch


class OrderParser:
    """Parser for one catalog version. Construction loads jieba's dictionary (~1 s, reads a cache file):
    build it once at start-up, off the event loop (``run_in_executor``), and again when the catalog changes.
    :meth:`parse` is then pure and fast (a fraction of a millisecond per chat line), fine on the loop.
    """

    def __init__(self, products: Sequence[Product], tokenizer: jieba.Tokenizer | None = None, *, max_qty: int = 9999) -> None:
        # A private tokenizer unless given one: aliases must not leak into another reader's dictionary.
        self._tokenizer = tokenizer if tokenizer is not None else fresh_tokenizer()
        self._tokenizer.initialize()
        self.max_qty = max_qty
        self._products: dict[str, Product] = {}
        self._alias_skus: dict[str, tuple[str, ...]] = {}
        for p in products:
            if p.sku in self._products:
                raise ValueError(f"duplicate sku {p.sku!r}")
            self._products[p.sku] = p
            for raw in (p.name, *p.aliases):
                alias = normalize_text(raw)
                for form in {alias, alias.replace(" ", "")} - {""}:
                    skus = self._alias_skus.get(form, ())
                    self._alias_skus[form] = skus if p.sku in skus else (*skus, p.sku)
        for alias, skus in list(self._alias_skus.items()):  # 鸡旦 / 蛋塔: a homophone typed for a character
            for variant in _typo_variants(alias):
                self._alias_skus.setdefault(variant, skus)  # a real alias of that spelling keeps its own SKUs
        for alias in self._alias_skus:
            if " " not in alias:  # jieba never puts a space inside a token
                freq = max(self._tokenizer.suggest_freq(alias, tune=False), _ALIAS_MIN_FREQ)
                self._tokenizer.add_word(alias, freq=freq, tag="nz")
        for word in cue_list("not_names").words:  # 流油的: a description around a one-character name, kept whole
            if word not in self._alias_skus:
                self._tokenizer.add_word(word, freq=_ALIAS_MIN_FREQ * 2)
        # Single characters only match as whole jieba tokens: 米 must not match inside 米饭.
        long_aliases = sorted((a for a in self._alias_skus if len(a) > 1), key=len, reverse=True)
        self._alias_re = re.compile("|".join(map(re.escape, long_aliases))) if long_aliases else None
        self._scanner = QuantityScanner(p.unit for p in products)
        # Words of a product's name that can settle an ambiguous alias (550ml矿泉水 vs 1.5l矿泉水).
        self._name_marks: dict[str, frozenset[str]] = {}
        self._spec_numbers: set[str] = set()  # sizes in product names (42.5, 550, 1.5): never a quantity when bare
        units = sorted({p.unit for p in products} | set(COMMON_UNITS), key=len, reverse=True)
        self._unit_alt = "|".join(map(re.escape, units))
        for p in products:
            name = normalize_text(p.name)
            words = [w for w, *_ in self._tokenizer.tokenize(name, mode="search", HMM=False) if _CJK_WORD.fullmatch(w)]
            specs = [form for token in _SPEC_TOKEN.findall(name) for form in _spec_forms(token)]
            self._name_marks[p.sku] = frozenset(words + specs)
            self._spec_numbers.update(f[1:] for f in specs if f.startswith("#"))
        # All of a product's names in one string, for "X的" (小瓶的 / 生的) that names a word only one candidate has.
        self._kind_text = {p.sku: " ".join(normalize_text(a) for a in (p.name, *p.aliases)) for p in products}
        self._mark_res = {w: re.compile(_mark_pattern(w, self._unit_alt)) for marks in self._name_marks.values() for w in marks}
        # The sizes in the names (550ml, 10寸, dn20), each with its product: what _sized_nouns looks for in every message
        self._size_marks = [(sku, self._mark_res[w]) for sku, marks in self._name_marks.items() for w in marks if _SIZE_MARK.search(w)]
        # 42.5和32.5的水泥: two sizes sharing one product name — read as 42.5的水泥和32.5的水泥 (rule 10).
        # Any alias may follow the sizes, a one-character one too (2.5和4平方的线): right after 的 it is the name.
        every_alias = "|".join(map(re.escape, sorted(self._alias_skus, key=len, reverse=True)))
        self._shared_spec = (
            re.compile(
                rf"(?P<a>{_SPEC_WORD})的?\s*(?P<j>和|跟|与|及|、|还有|以及|)\s*(?P<b>{_SPEC_WORD})\s*的?\s*(?:两种|二种|两样)?\s*(?=(?P<alias>{every_alias}))"
            )
            if self._alias_skus
            else None
        )
        # 广式冰皮两种月饼都订2盒 / 鲁花 金龙鱼 两种油一样一桶: kinds named one by one, then summed up under the name they
        # share — the sum names nothing more (rule 10)
        self._summed_kinds = (
            re.compile(rf"(?:这|这个)?(?P<n>两|二|俩|三|仨)\s*(?:种|样|款|类)的?\s*(?P<alias>{every_alias})") if self._alias_skus else None
        )
        self._any_alias = re.compile(every_alias) if self._alias_skus else None
        self._sizes_after = (
            re.compile(rf"(?P<alias>{every_alias})\s*(?P<a>{_SPEC_WORD})\s*(?:和|跟|与|及|、|还有)\s*(?P<b>{_SPEC_WORD})(?![\d.]|\s*的)")
            if self._alias_skus
            else None
        )
        self._sound_alike = _SoundAlike(self._alias_skus)
        # Amounts a name packs (康师傅红烧牛肉面 24包, 牛奶小餐包 6个装): said before the product they name the kind
        self._name_amounts = {f"{n}{u}" for p in products for n, u in re.findall(rf"(\d+)\s*({self._unit_alt})", normalize_text(p.name))}
        self._scans: dict[str, _Scan] = {}  # the last messages' scans: understand() and parse() read one message twice
        self._normals: dict[str, str] = {}  # the same for the normalised text (a run-on's clause breaks need a scan)

    @property
    def products(self) -> dict[str, Product]:
        return dict(self._products)

    @functools.cached_property
    def _siblings(self) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for skus in self._alias_skus.values():
            for s in skus:
                out.setdefault(s, set()).update(x for x in skus if x != s)
        return {s: frozenset(v) for s, v in out.items()}

    def sizes_left_out(self, text: str, result: OrderLines) -> list[str]:
        """Another size of a product ordered, written in the message (4平方 / 10寸 / dn50) but given no amount, in a
        message that takes nothing back (2.5的线跟4平方的 一样一卷): it would be dropped in silence — the caller asks."""
        scan = self._scan(self._normal(text))
        if _RETRACT.search(scan.masked) or _CORRECTION.search(scan.masked) or _NEGATED.search(scan.masked):
            return []
        ordered = {ln.sku for ln in result.lines}
        own = {w for o in ordered for w in self._name_marks.get(o, ())}  # 357克 is both 普洱's: it names no other size
        sized = {
            sku
            for sku, marks in self._name_marks.items()
            for w in marks
            if _SIZE_MARK.search(w) and w not in own and self._mark_res[w].search(scan.text)
        }
        return sorted(s for s in sized - ordered - set(result.excluded) if any(s in self._siblings.get(o, ()) for o in ordered))

    @functools.cached_property
    def pinyin_words(self) -> dict[str, str]:
        """Pinyin letters → characters for this catalog: its aliases' own spellings and the common words
        (:mod:`bots.dialogue.pinyin_input`)."""
        return pinyin_dictionary(self._alias_skus)

    def _normal(self, text: str) -> str:
        """:func:`normalize_text`, then a product name shared by two sizes written out for each (42.5和32.5的水泥
        → 42.5的水泥和32.5的水泥) when both sizes are in the catalog's names, and clause breaks where a run-on
        message (typed or dictated without punctuation) plainly changes item."""
        cached = self._normals.get(text)
        if cached is None:
            if len(self._normals) >= _SCAN_CACHE:
                self._normals.clear()
            t = normalize_text(text, self._alias_skus).replace("分别", "各")  # 碧螺春、大红袍分别要两盒
            t = _VOIDED.sub("", t)  # 铁观音按3斤来，前面打的2斤不算: the amount said void is no amount
            t = _KINDS_COUNTED.sub("", t)  # 8寸、10寸水果蛋糕，两个尺寸各一个: the kinds counted are the ones named
            t = self._shared_sizes(self._kinds_named_once(self._without_summed_kinds(t)))
            cached = self._normals[text] = self._with_clause_breaks(t)
        return cached

    def _with_clause_breaks(self, t: str) -> str:
        """蛋挞6个泡芙就不要了 / 要6个蛋挞蛋糕我再想想: dictated without a sign, one item's clause runs into the
        next. Where an item (product then amount, or amount then product — as the message starts) is followed
        straight away by more words, with no sign or space between, a comma is put: what "not" or "later" says
        is then scoped to its own clause, as when the customer types one. Never before a particle (3箱吗)."""
        scan = self._scan(t)
        elements: list[_Element] = sorted([*scan.mentions, *scan.quantities], key=lambda e: e.start)
        if len(elements) < 2:
            return t
        product_first = isinstance(elements[0], _Mention)
        breaks = []
        for a, b in itertools.pairwise(elements):
            item_ends = (
                (isinstance(a, _Mention) and isinstance(b, QuantityMatch))
                if product_first
                else (isinstance(a, QuantityMatch) and isinstance(b, _Mention))
            )
            amount = b if isinstance(b, QuantityMatch) else a
            if not item_ends or _GAP_WORDS.fullmatch(t[a.end : b.start]) is None or amount.value is None:  # type: ignore[union-attr]
                continue  # 茶具套装几个杯子: a vague amount asks what it holds, no item ends there
            at = b.end
            next_product = any(isinstance(e, _Mention) and e.start == at for e in elements)
            if at < len(t) and (next_product or _NEW_CLAUSE.match(scan.masked, at)):
                breaks.append(at)
        # …and around "not" standing between two products in a run-on: after it when the first has no amount (调和油莫要白糖拿两袋:
        # said of the oil), before it when the first has one (可乐3箱不要雪碧再带一提纸巾: said of the sprite)
        for no in _BARE_NOT.finditer(scan.masked):
            left = next((e for e in reversed(elements) if e.end == no.start()), None)
            right = next((e for e in elements if e.start == no.end()), None)
            if isinstance(left, _Mention) and isinstance(right, _Mention) and not set(left.skus) & set(right.skus):
                # an amount right before the first product is its own — unless it follows another product (花生油一桶调和油)
                own_amount = any(
                    isinstance(e, QuantityMatch)
                    and left.start - 3 <= e.end <= left.start
                    and not any(isinstance(f, _Mention) and e.start - 2 <= f.end <= e.start for f in elements)
                    for e in elements
                )
                breaks.append(no.start() if own_amount else no.end())
        # …and after "not" said of one item when the next item follows at once (泡面不用了纸巾来两提)
        breaks += [
            m.end()
            for m in _NOT_THEN_ITEM.finditer(scan.masked)
            if m.group(0) or any(e.start > m.end() for e in scan.mentions)  # 电线再加两卷2.5的: 再加 opens no next item
        ]
        # …and before "not" said of the other kind of a product just named with one (龙井要明前的不要雨前 / 普洱要熟普不要生普)
        for no in _NOT_THE_OTHER_KIND.finditer(scan.masked):
            before = [m for m in scan.mentions if m.end <= no.start()]
            after = next((m for m in scan.mentions if m.start >= no.end()), None)
            generic = before[0] if before else None
            if (
                generic is not None
                and after is not None
                and scan.masked[no.end() : after.start].strip() == ""
                and len(before) >= 2
                and set(after.skus) < set(generic.skus)
                and set(before[-1].skus) < set(generic.skus)
                and not set(after.skus) & set(before[-1].skus)
            ):
                breaks.append(no.start())
        first = elements[0]
        if isinstance(first, _Mention) and _NOT_FIRST.fullmatch(t[: first.start]):
            end = first.end + (1 if t[first.end : first.end + 1] in ("了", "啦") else 0)
            if end < len(t) and t[end] not in _CLAUSE_END and not (t.startswith("不是") and t[end] == "是"):  # 不是X是Y: one swap
                breaks.append(end)  # 不要可乐了换雪碧3箱 / 不要龙井茉莉花茶4袋
        for at in sorted(set(breaks), reverse=True):
            t = t[:at] + "," + t[at:]
        return t

    def _shared_sizes(self, t: str) -> str:
        if self._shared_spec is None or not any(ch.isdigit() for ch in t):
            return t

        def spec(word: str) -> bool:
            return re.sub(r"[^\d.]", "", word) in self._spec_numbers or any(word in marks for marks in self._name_marks.values())

        def suffix(word: str) -> str:
            return re.sub(r"[\d.]", "", word)

        def spread(m: re.Match[str]) -> str:
            if not (spec(m.group("a")) and spec(m.group("b"))):
                return m.group(0)
            if not m.group("j") and suffix(m.group("a")) != suffix(m.group("b")):
                return m.group(0)  # 6寸8寸的水果蛋糕 / 42.5 32.5的水泥: two sizes of one measure side by side; 550 12瓶的 is none
            if not m.group("j") and not suffix(m.group("a")) and not re.search(r"\s", m.group(0)):
                return m.group(0)  # bare numbers only when set apart by a space
            return f"{m.group('a')}的{m.group('alias')}{m.group('j') or '和'}{m.group('b')}的"

        t = self._shared_spec.sub(spread, t)
        if self._sizes_after is not None:  # 水泥42.5和32.5 全要20袋: the name first, then its two sizes
            t = self._sizes_after.sub(
                lambda m: (
                    f"{m.group('a')}的{m.group('alias')}和{m.group('b')}的{m.group('alias')}"
                    if spec(m.group("a")) and spec(m.group("b"))
                    else m.group(0)
                ),
                t,
            )
        return t

    def _without_summed_kinds(self, t: str) -> str:
        """广式冰皮两种月饼都订2盒: "the two kinds of 月饼" after 广式 and 冰皮 were named sums them up — taken out, so
        the shared amount goes to the kinds themselves, not to an ambiguous 月饼."""
        if self._summed_kinds is None or self._any_alias is None:
            return t
        for m in self._summed_kinds.finditer(t):
            whole = set(self._alias_skus[m.group("alias")])
            named = {self._alias_skus[a.group(0)] for a in self._any_alias.finditer(t, 0, m.start())}
            kinds = {skus[0] for skus in named if len(skus) == 1 and skus[0] in whole}
            if len(kinds) == _COUNT_WORDS[m.group("n")] and len(named) == len(kinds):
                return t[: m.start()] + t[m.end() :]
        return t

    def _kinds_named_once(self, t: str) -> str:
        """矿泉水要小瓶的5箱 大瓶的2箱 / 电线2.5的3卷 4平方的2卷: an ambiguous name said once, then further kinds of
        it each with an amount — written out as 大瓶的矿泉水2箱 after a comma, so each kind settles its own item."""
        if self._alias_re is None or "的" not in t:
            return t
        kinds = [m for m in _KIND_AMOUNT.finditer(t)]
        names = list(self._alias_re.finditer(t))
        if not kinds or not names or any(n.start() > kinds[0].start() for n in names):
            return t
        alias = names[0].group(0)
        skus = self._alias_skus[alias]
        if len(skus) < 2 or any(n.group(0) != alias for n in names):
            return t

        def names_a_kind(word: str) -> bool:
            return any(word in self._kind_text[s] or any(self._mark_res[w].search(word) for w in self._name_marks[s]) for s in skus)

        if not all(names_a_kind(k.group("kind")[:-1]) for k in kinds):
            return t
        return _KIND_AMOUNT.sub(lambda k: f",{k.group('kind')}{alias}", t)

    def parse(self, text: str, *, has_draft: bool = False) -> ParseResult:
        """Read one chat message. Never raises on any text; never picks between readings (→ Clarify).

        Confirm only when ``has_draft`` (without a draft 好的 is small talk). Stock and price questions
        (有没有矿泉水, 多少钱) are NotAnOrder so the caller's other intents can answer them.
        """
        scan = self._scan(self._normal(text))
        dropping = has_draft and _REMOVE.search(scan.masked) is not None  # 电线先别拿了 电工说还有: a removal, not a stock question
        if not scan.text or (_STOCK.search(without_leftovers(scan.masked)) and not dropping) or _INQUIRY.search(scan.masked):
            return NotAnOrder()
        if not scan.mentions and not scan.quantities:
            if _CONFIRM_ONLY.fullmatch(scan.text) and _CONFIRM_WORD.search(scan.text):
                return Confirm() if has_draft else NotAnOrder()
            if _CANCEL.search(scan.text) or _CANCEL_WHOLE.search(scan.text):
                return Cancel()
            if _BARE_CORRECTION.fullmatch(re.sub(r"[\s,.!?~。]", "", scan.text)):
                return _unclear_correction([])
            return NotAnOrder()
        if has_draft and _CANCEL_WHOLE.search(scan.text):
            return Cancel()  # 算了 一个都不要了
        retracted = self._self_correction(scan, has_draft)
        if retracted is not None:
            return retracted
        correction = self._correction(scan)
        if isinstance(correction, Correction) and not has_draft and len(scan.quantities) >= 2:
            # 大米不是2袋是3袋 with no draft: the message corrects itself, it is an order of the new amount.
            if correction.sku is None:
                unit = correction.unit or ""
                return Clarify("missing_product", f"请问您要的{correction.qty}{unit}是什么商品？", qty=correction.qty, unit=correction.unit)
            return OrderLines([Line(correction.sku, correction.qty, correction.unit or "", correction.matched)], "new")
        if correction is not None:
            return correction
        split = self._without_negated_clauses(scan)
        if split is not None:
            kept = self._order(split[0], excluded=split[1], full=scan)
            negated = {r[0] for m in split[1] if len(r := self._resolve(m, _within_clause(scan, m))) == 1}
            if isinstance(kept, OrderLines) and (taken_back := negated & {ln.sku for ln in kept.lines}):
                # 泡芙4个 … 泡芙不要了: the later "not" takes the earlier line back (the last value wins, rule 7)
                lines = [ln for ln in kept.lines if ln.sku not in taken_back]
                return OrderLines(lines, kept.mode, kept.excluded) if lines else NotAnOrder()
            return kept
        if _CANCEL_WHOLE.search(scan.text):  # the text: 一个都不要了 has an amount in it
            return Cancel()  # 蛋糕订单取消吧 / 蛋糕啥的一样都不订了: the order itself, whatever item is named
        if _REMOVE.search(scan.masked) or _CANCEL.search(scan.masked):
            return self._removal(scan)
        return self._order(scan)

    def _self_correction(self, scan: _Scan, has_draft: bool) -> ParseResult | None:
        """要2袋大米…不对，改成4袋: an order, then a retraction cue, then the amount (or item) meant instead."""
        qs = scan.quantities
        for cue in itertools.chain(_RETRACT.finditer(scan.masked), _CORRECTION.finditer(scan.masked)):
            if cue.group(0).startswith("算了") and _said_of_a_product(scan, cue.start()):
                continue  # 法棍今天算了 家里还有一根: the baguette let go, nothing taken back
            before_q = [q for q in qs if q.end <= cue.start()]
            before_m = [m for m in scan.mentions if m.end <= cue.start()]
            after_q = [q for q in qs if q.start >= cue.end()]
            if before_q and before_m and after_q:
                break
        else:
            if not has_draft and (resized := self._size_retraction(scan)) is not None:
                return resized
            if not has_draft and (swapped := self._product_retraction(scan)) is not None:
                return swapped
            first_cue = _RETRACT_WORD.search(scan.masked)
            if (
                not has_draft
                and first_cue is not None
                and not any(m.start < first_cue.start() for m in scan.mentions)
                and not any(q.start < first_cue.start() for q in scan.quantities)
                and any(m.start >= first_cue.end() for m in scan.mentions)
            ):  # 8寸的 不对 10寸的水果蛋糕一个: only a kind was said before the slip — what follows is the order
                return self.parse(scan.text[first_cue.end() :])
            if not has_draft and (named_over := self._name_retraction(scan)) is not None:
                return named_over
            said_wrong = _SAID_WRONG.search(scan.masked)
            if has_draft and said_wrong is not None and qs and qs[-1].end <= said_wrong.start():
                # 花生油要2桶 刚才说错了 (with a draft): the message restates a draft line after the slip
                restated = self.parse(scan.text[: said_wrong.start()], has_draft=False)
                if isinstance(restated, OrderLines) and len(restated.lines) == 1:
                    return _as_correction(restated)
            return None
        first = self.parse(scan.text[: cue.start()], has_draft=has_draft)
        if not isinstance(first, OrderLines):
            return first if isinstance(first, Clarify) else None
        new_q = after_q[0]
        if cue.group(0) == "不是" and scan.text[cue.end() : new_q.start] == "" and len(after_q) > 1:
            if re.fullmatch(r"[\s,，]*(?:而是|是|要)\s*", scan.text[new_q.end : after_q[1].start]):
                new_q = after_q[1]  # 可乐3箱 不是3箱是4箱: the amount after 是 is meant, never the one denied
        if (
            cue.group(0) == "不是"
            and scan.text[cue.end() : new_q.start] == ""  # 不是2袋 negates the amount it is written against
            and scan.text[cue.start() - 1 : cue.start()] not in _INTERJECTION  # 啊不是 / 哦不是 retract
            and not scan.text[new_q.end :].strip()
        ):
            return _as_correction(first) if has_draft else first  # 大米要3袋 不是2袋: the 2袋 is what is not meant
        after_m = [m for m in scan.mentions if m.start >= cue.end()]
        if len(after_m) > 1 and re.fullmatch(r"[\s,，]*(?:是|要|而是|换成?)\s*", scan.text[after_m[0].end : after_m[1].start]):
            after_m = after_m[1:]  # 哦不是防水 是乳胶漆 4桶: the product named after 是 is meant, not the one denied
        if after_m and re.fullmatch(_HESITATION, cue.group(0)):
            return None  # 大米2袋 嗯 可乐3箱: a pause before a second item, nothing taken back
        lines = list(first.lines)
        if after_m:
            checked = self._checked(after_m[0], new_q, scan, "要修改", "要改成")
            if isinstance(checked, Clarify):
                return checked
            product, qty = checked
            at = next((i for i, ln in enumerate(lines) if ln.sku == product.sku), None)
            swap = not has_draft and cue.group(0) in ("换成", "换为")  # 白茶饼1饼 等等 换成大红袍1盒: the last line swapped
            retracted = cue.re is _RETRACT  # 不对 / 等等 / 哦换成…: taken back, whatever the word
            if at is None and not retracted and not swap:
                return None  # 大米2袋，可乐改成3瓶: a change to an earlier draft mixed with an order — not this
            line = Line(product.sku, qty, product.unit, after_m[0].text)
            lines[len(lines) - 1 if at is None else at] = line  # 不对，是2袋面粉: the last item is replaced
        else:
            if len(lines) > 1 and _EACH.search(scan.masked, cue.end(), new_q.start):
                return _unclear_correction([ln.sku for ln in lines])  # 可乐雪碧各两箱 不对 各三箱: which lines — asked
            named = [m for m in before_m if m.start > before_q[-1].end]  # 可乐雪碧各2箱 可乐改3箱: the one named at 改
            if named:
                target = self._resolve(named[-1], scan)
                at = next((i for i, ln in enumerate(lines) if ln.sku in target), None)
                if len(target) != 1 or at is None:
                    return _unclear_correction(list(target))
                lines.append(lines.pop(at))  # the line named is the one corrected below
            last = lines[-1]
            if (other_kind := self._size_named(before_m, last.sku, scan.text[cue.end() :])) is not None:
                last = Line(other_kind, last.qty, self._products[other_kind].unit, last.matched)  # 2.5的电线5卷 不对是4平方的 5卷
            unit = self._products[last.sku].unit
            qty = self._whole_quantity(new_q, last.matched, unit, last.sku)
            if isinstance(qty, Clarify):
                return qty
            if new_q.unit is not None and new_q.unit != unit:
                return Clarify(
                    "unit_mismatch",
                    f"{last.matched}是按{unit}卖的，请问您说的{qty}{new_q.unit}是指{qty}{unit}吗？",
                    [last.sku],
                    last.matched,
                    qty,
                    unit,
                )
            lines[-1] = Line(last.sku, qty, last.unit, last.matched)
        merged: dict[str, Line] = {}
        for ln in lines:
            merged[ln.sku] = ln
        result = OrderLines(list(merged.values()), first.mode, first.excluded)
        return _as_correction(result) if has_draft else result  # with a draft, 纸巾不是3提 改成2提 changes that line

    def _product_retraction(self, scan: _Scan) -> ParseResult | None:
        """可乐2箱 不对是雪碧 / 大米2袋 错了 要面粉: a retraction word, then only another product (no amount) — the
        last line's product is what is taken back; its amount stands, checked against the new product's unit."""
        for cue in _RETRACT_WORD.finditer(scan.masked):
            if any(q.start >= cue.end() for q in scan.quantities) or not any(q.end <= cue.start() for q in scan.quantities):
                continue
            after_m = [m for m in scan.mentions if m.start >= cue.end()]
            if len(after_m) != 1 or not any(m.end <= cue.start() for m in scan.mentions):
                continue
            first = self.parse(scan.text[: cue.start()])
            if not isinstance(first, OrderLines):
                return None
            last = first.lines[-1]
            after = re.sub(
                r"^(?:[\s,，。!！]|不对|不是|错了|换成|改成|换为|改为|换|要|是)+", "", scan.text[cue.end() :]
            )  # 不对不对 换成青岛
            meant = self.parse(f"{after} {last.qty}{last.unit}")
            if isinstance(meant, Clarify):
                return meant
            if not isinstance(meant, OrderLines) or len(meant.lines) != 1:
                return None
            lines = {ln.sku: ln for ln in first.lines[:-1]}
            lines[meant.lines[0].sku] = meant.lines[0]
            return OrderLines(list(lines.values()), first.mode, first.excluded)
        return None

    def _name_retraction(self, scan: _Scan) -> ParseResult | None:
        """生普 不 熟普 两饼 / 墙砖 啊不是 地砖 要80片: a product named with no amount, taken back at once (a lone 不, 啊不是,
        哦不对), then another product with its amount — the one named after the slip is the order (rule 7)."""
        for cue in itertools.chain(_RETRACT.finditer(scan.masked), _INSTEAD.finditer(scan.masked)):
            if re.fullmatch(_HESITATION, cue.group(0)) or cue.group(0).startswith("还是"):
                continue  # a pause or 还是 between two products names two items
            before_m = [m for m in scan.mentions if m.end <= cue.start()]
            if not before_m or any(q.start < cue.start() for q in scan.quantities):
                continue
            after_m = [m for m in scan.mentions if m.start >= cue.end()]
            if len(after_m) != 1 or not any(q.start >= cue.end() for q in scan.quantities):
                continue
            meant = self.parse(re.sub(r"^[\s,，。!！…]+", "", scan.text[cue.end() :]))
            return meant if isinstance(meant, OrderLines | Clarify) else None
        return None

    def _size_named(self, before: Sequence[_Mention], sku: str, after: str) -> str | None:
        """The other kind of the ambiguous product ``sku`` was read as, when ``after`` (what follows a retraction)
        names a size or word only that kind has: 2.5的电线 … 不对是4平方的 → the 4平方 wire."""
        target = next((m for m in reversed(before) if sku in m.skus), None)
        if target is None:
            return None
        # 32.5水泥 names one kind; the kinds of its generic part (水泥) are what the retraction can switch to
        kinds = {s for k in range(len(target.text) - 1) for s in self._alias_skus.get(target.text[k:], ())} | set(target.skus)
        if len(kinds) < 2 and target.text not in self._alias_skus:
            # DN20的管子30根 哦说错了 是DN50的: a noun named by its size — the size said after the slip names the other one
            named = [s for s in self.skus_named_by_spec(after) if s != sku and self._products[s].unit == self._products[sku].unit]
            return named[0] if len(named) == 1 else None
        if len(kinds) < 2:
            return None
        common = frozenset.intersection(*(self._name_marks[s] for s in kinds))
        named = [s for s in sorted(kinds) if any(self._mark_res[w].search(after) for w in self._name_marks[s] - common)]
        return named[0] if len(named) == 1 and named[0] != sku else None

    def _size_retraction(self, scan: _Scan) -> OrderLines | None:
        """水泥20袋 32.5的 哦不 要42.5的: a retraction, then only a size (no amount, no product) — the size of the
        last product named is what is taken back; its amount stands (the last value wins, rule 7)."""
        for cue in _RETRACT.finditer(scan.masked):
            before_m = [m for m in scan.mentions if m.end <= cue.start()]
            after = scan.text[cue.end() :]
            if not before_m or any(el.start >= cue.end() for el in [*scan.mentions, *scan.quantities]):
                continue
            first = self.parse(scan.text[: cue.start()])
            if not isinstance(first, OrderLines):
                continue
            at = [i for i, ln in enumerate(first.lines) if ln.sku in before_m[-1].skus]
            named = self._size_named(before_m[-1:], first.lines[at[0]].sku, after) if len(at) == 1 else None
            if named is None:  # 42.5水泥20袋 说错了是32.5的: the size named after the slip is the other kind
                continue
            lines = list(first.lines)
            old = lines[at[0]]
            lines[at[0]] = Line(named, old.qty, self._products[named].unit, old.matched)
            return OrderLines(lines, first.mode, first.excluded)
        return None

    @staticmethod
    def _negates_an_item(scan: _Scan, a: int, b: int) -> bool:
        """The clause a..b says "not" of its item — not of the delivery said after the item (钢筋两吨周四上午到就行不用太早
        / 面粉两袋 下午你有空再送不着急的: when it comes is what is not pressing)."""
        for no in _NEGATED.finditer(scan.masked, a, b):
            items = [e.end for e in (*scan.mentions, *scan.quantities) if a <= e.start and e.end <= no.start()]
            if not items or not _DELIVERY_SAID.search(scan.masked, max(items), no.start()):
                return True
        return False

    def _without_negated_clauses(self, scan: _Scan) -> tuple[_Scan, frozenset[_Mention]] | None:
        """大米2袋，油先不要 / 蛋糕一个 不要写字 / 茶杯上次买了不用: the clauses that say "not this" taken out, when
        another clause orders something with a quantity; None when there is no such split."""
        negated = [(a, b) for a, b in _clauses(scan) if self._negates_an_item(scan, a, b)]
        if not negated:
            return None

        def inside(start: int) -> bool:
            return any(a <= start < b for a, b in negated)

        unwanted = {m.skus for a, b in negated for m in scan.mentions if a <= m.start < b}
        for a, b in _clauses(scan):  # 别拿雪花的 … 一喝雪花就上头: the unwanted one named again, with no amount, is no item
            named = [m for m in scan.mentions if a <= m.start < b]
            if named and all(m.skus in unwanted for m in named) and not any(a <= q.start < b for q in scan.quantities):
                negated.append((a, b))
        kept_q = [q for q in scan.quantities if not inside(q.start)]
        kept_m = [m for m in scan.mentions if not inside(m.start)]
        if not kept_q or not kept_m:
            return None
        text, masked = list(scan.text), list(scan.masked)
        for a, b in negated:
            text[a:b] = masked[a:b] = " " * (b - a)
        separators = [(a, b) for a, b in scan.separators if not inside(a)]
        dropped = frozenset(m for m in scan.mentions if inside(m.start))
        return _Scan("".join(text), "".join(masked), kept_m, kept_q, separators), dropped

    def _qualified(self, scan: _Scan, pairs: dict[_Mention, QuantityMatch]) -> tuple[dict[_Mention, QuantityMatch], set[_Mention]]:
        """月饼礼盒要10盒 广式的: a product named again without a quantity, as a kind of one that has one, narrows
        it (and is no second item)."""
        qualifiers: set[_Mention] = set()
        narrowed = dict(pairs)
        for u in scan.mentions:
            if u in pairs:
                continue
            own = set(self._resolve(u, scan))
            for p, q in list(narrowed.items()):
                common = tuple(s for s in self._resolve(p, scan) if s in own)
                # 月饼礼盒要10盒 广式的: a kind narrowing the one with the amount; 普洱要生茶 3饼: the family named first
                if common and (own <= set(p.skus) or set(p.skus) <= own):
                    del narrowed[p]
                    narrowed[_Mention(p.start, p.end, p.text, common)] = q
                    qualifiers.add(u)
                    break
        if not qualifiers:
            return pairs, qualifiers
        return narrowed, qualifiers

    def _is_spec_number(self, q: QuantityMatch, text: str) -> bool:
        """42.5水泥 / 550的: a bare number that is a size in the catalog's names, not how many — or an amount a
        name packs (康师傅红烧牛肉面 24包) said as the kind: 24包那种康师傅 / 24包的."""
        if q.unit is not None and q.value is not None and q.value.denominator == 1:
            packed = f"{q.value.numerator}{q.unit}" in self._name_amounts
            return packed and re.match(r"\s*(?:的|那种|那款)|装", text[q.end : q.end + 3]) is not None
        if q.unit is not None or q.text.strip() not in self._spec_numbers:
            return False
        return "." in q.text or re.match(r"\s*(?:的|那种|那款|装|规格|\x00)", text[q.end : q.end + 3]) is not None

    def skus_of_name(self, name: str) -> tuple[str, ...]:
        """Every SKU a product name or alias may mean, before anything around it settles one (蛋糕 → three sizes)."""
        return self._alias_skus.get(normalize_text(name), ())

    def skus_named_by_spec(self, text: str) -> list[str]:
        """SKUs whose size or distinguishing word the text names (8寸的 / 42.5的 / 大瓶的) — the answer to
        "which one?" that names no product. Several or none: the caller asks again."""
        t = self._normal(text)
        found = [sku for sku, marks in self._name_marks.items() if any(self._mark_res[w].search(t) for w in marks)]
        sized = [sku for sku in found if any(_SIZE_MARK.search(w) and self._mark_res[w].search(t) for w in self._name_marks[sku])]
        if not found:  # 熟的 / 生的: "X的" with X in one product's names only (熟茶, 熟普)
            for said in _KIND.finditer(t):
                having = [sku for sku, kind in self._kind_text.items() if said.group(1) in kind]
                if len(having) == 1:
                    found.append(having[0])
            found = list(dict.fromkeys(found))
        return sized or found  # 8寸的: the 8寸 cake, not the box of 8 mooncakes (a bare 8)

    def order_by_size_alone(self, text: str) -> Line | None:
        """要42.5的 20袋 / 不要6寸了 要8寸的一个: no product named outside the clauses that say "not", one whole
        amount with a unit, and a size or kind only one SKU of the whole catalog has, sold in that very unit —
        that SKU and amount. None whenever anything else is there or anything is unclear (the caller asks)."""
        scan = self._scan(self._normal(text))
        clauses = _clauses(scan)
        kept = [(a, b) for a, b in clauses if not _NEGATED.search(scan.masked, a, b)]
        if (len(kept) == len(clauses) and scan.mentions) or any(a <= m.start < b for m in scan.mentions for a, b in kept):
            return None  # nothing negated (the parser's own reading stands), or a product named in what is kept
        qs = [q for q in scan.quantities if any(a <= q.start < b for a, b in kept)]
        if len(qs) != 1 or qs[0].unit is None or qs[0].value is None or qs[0].value.denominator != 1 or qs[0].value <= 0:
            return None
        named = self.skus_named_by_spec(" ".join(scan.text[a:b] for a, b in kept))
        if len(named) != 1 or self._products[named[0]].unit != qs[0].unit:
            return None
        product = self._products[named[0]]
        return Line(product.sku, int(qs[0].value), product.unit, product.name)

    def survey(self, text: str) -> Survey:
        """What :meth:`parse` sees in a message — the normalised text, product mentions, quantities, and numbers
        that are prices or pack sizes — for classifying it and for explaining a reading to staff."""
        scan = self._scan(self._normal(text))
        mentions = [Mention(m.start, m.end, m.text, self._resolve(m, scan)) for m in scan.mentions]
        return Survey(scan.text, scan.masked, mentions, list(scan.quantities), self._scanner.not_quantities(scan.text))

    def stock_query_product(self, text: str) -> list[str] | None:
        """SKUs asked about in a stock or price question (有没有矿泉水 / 矿泉水还有货吗 / 矿泉水库存 / 矿泉水多少钱).

        None: not a stock question. []: a stock question about nothing in the catalog (有没有雪碧).
        A price question is one only when it names a product (一共多少钱 / 运费多少钱 are not about the catalog).
        An ambiguous alias yields all its SKUs.
        """
        scan = self._scan(normalize_text(text, self._alias_skus))
        skus = list(dict.fromkeys(s for m in scan.mentions for s in self._resolve(m, scan)))
        if _STOCK.search(scan.masked):
            return skus
        if skus and _PRICE.search(scan.masked):
            return skus
        return None

    @staticmethod
    def names_no_product(text: str) -> bool:
        """A stock question that names nothing at all (还有多少库存 / 有货吗), as opposed to one naming something
        the catalog lacks (有没有雪碧): the first is answered with a question, the second with 没有这个商品."""
        return not _STOCK_FILLER.sub("", _STOCK.sub("", normalize_text(text)))

    def _scan(self, text: str) -> _Scan:
        cached = self._scans.get(text)
        if cached is None:
            if len(self._scans) >= _SCAN_CACHE:
                self._scans.clear()
            cached = self._scans[text] = self._scan_uncached(text)
        return cached

    def _scan_uncached(self, text: str) -> _Scan:
        mentions: list[_Mention] = []
        tokens = list(self._tokenizer.tokenize(text, HMM=False))
        i = 0
        while i < len(tokens):  # the longest run of whole tokens that spells an alias
            joined, best = "", -1
            for j in range(i, min(i + _MAX_ALIAS_TOKENS, len(tokens))):
                joined += tokens[j][0]
                best = j if joined in self._alias_skus else best
            if best >= 0 and best == i and self._inside_a_word(text, tokens[i][1], tokens[i][2]):
                best = -1  # 流油的 / 汽水: a one-character name that is the end or start of another word
            if best >= 0:
                start, end = tokens[i][1], tokens[best][2]
                mentions.append(_Mention(start, end, text[start:end], self._alias_skus[text[start:end]]))
            i = max(best, i) + 1
        if self._alias_re is not None:  # aliases jieba split anyway (e.g. around digits or spaces)
            # …but not as the start of a longer dictionary word that is no alias (水泥钉 / 瓷砖胶水): the word's
            # last part is what it names (a nail, a glue), another product — asked as unknown, never ordered as
            # this one. (生日蛋糕 ends in the alias: a kind of cake, kept.)
            words = [(s, e) for w, s, e in tokens if e - s > 1 and w not in self._alias_skus and _CJK_WORD.fullmatch(w)]
            for m in self._alias_re.finditer(_mask(text, mentions)):
                if any(s <= m.start() and m.end() < e for s, e in words):
                    continue
                mentions.append(_Mention(m.start(), m.end(), m.group(0), self._alias_skus[m.group(0)]))
        mentions = _merge_adjacent(sorted(mentions, key=lambda m: m.start), text, self._alias_skus)
        masked = _mask(text, mentions)
        found = self._scanner.find(masked)
        specs = tuple(q for q in found if self._is_spec_number(q, masked))
        quantities = [q for q in found if q not in specs]
        masked = _mask(masked, quantities)
        mentions = self._sound_alike.over(text, mentions, quantities, self._tokenizer)  # 防水图料: not 防水 alone
        masked = _mask(_mask(text, mentions), quantities)
        heard = self._sound_alike.find(text, masked, quantities, self._tokenizer) + self._sized_nouns(masked)
        if heard:  # 雪壁来四箱: a name typed with a homophone, in an order's place
            mentions = sorted([*mentions, *heard], key=lambda m: m.start)
            masked = _mask(masked, heard)
        separators = [m.span() for m in _SEPARATOR.finditer(masked)]
        return _Scan(text, masked, mentions, quantities, separators, specs)

    def _inside_a_word(self, text: str, start: int, end: int) -> bool:
        """A one-character alias (油 / 水 / 米) that, with the character before or after it, makes a word of the
        dictionary which is no alias — 流油 (runny, of a yolk), 汽水, 油漆: another thing, not this product."""
        if end - start != 1:
            return False
        for word in (text[start - 1 : end] if start > 0 else "", text[start : end + 1] if end < len(text) else ""):
            if len(word) == 2 and _CJK_WORD.fullmatch(word) and word not in self._alias_skus and self._tokenizer.FREQ.get(word, 0) > 0:
                if not (set(word) - {text[start]}) & _FUNCTION_CHARS:
                    return True
        return False

    def _sized_nouns(self, masked: str) -> list[_Mention]:
        """DN20的管子 / 10寸水果的: a size only one product's name has, then a common word for it (its first
        character in that product's names) — that product, named by its size."""
        by_end: dict[int, set[str]] = {}
        if not re.search(r"\d", masked):  # every size mark has a digit (十寸 is written 10寸 by then)
            return []
        for sku, mark in self._size_marks:
            for m in mark.finditer(masked):
                by_end.setdefault(m.end(), set()).add(sku)
        found: list[_Mention] = []
        for end, skus in sorted(by_end.items()):
            noun = _SIZED_NOUN.match(masked, end)
            sku = next(iter(skus))
            if noun is not None and len(skus) == 1 and noun.group(1)[0] in self._kind_text[sku]:
                found.append(_Mention(noun.start(1), noun.end(1), noun.group(1), (sku,)))
        return found

    def _resolve(self, mention: _Mention, scan: _Scan) -> tuple[str, ...]:
        """The mention's SKUs, narrowed to one when its segment names a word only one candidate has."""
        if len(mention.skus) == 1:
            return mention.skus
        left, right = scan.segment(mention.start, mention.end)

        # A qualifier belongs to the nearest product: never look past the next product on either side (in 6寸蛋糕6个
        # 月饼2盒 the 6寸 is the cake's, it settles no 月饼 of 6个装).
        def another_item(m: _Mention) -> bool:  # 沙子要河沙: 河沙 is a kind of it; 32.5水泥10袋 水泥20袋: two items
            a, b = (m.end, mention.start) if m.end <= mention.start else (mention.end, m.start)
            if not set(m.skus) <= set(mention.skus) or any(a <= q.start < b for q in scan.quantities):
                return True
            # 2.5的线 4平方的线: the name said again after a sign, with its own kind before it — a second item
            return re.search(r"[\s,，、;；]", scan.text[a:b]) is not None and scan.text[b - 1 : b] == "的"

        others = [m for m in scan.mentions if m is not mention and another_item(m)]
        left = max([left, *(m.end for m in others if m.end <= mention.start)])
        right = min([right, *(_own_kind_start(scan.text, mention.end, m.start) for m in others if m.start >= mention.end)])
        context = _NEGATED_KIND.sub(_blank, scan.text[left : mention.start] + " " + scan.text[mention.end : right])
        marks = [self._name_marks[s] for s in mention.skus]
        common = frozenset.intersection(*marks)
        hits = [sku for sku, own in zip(mention.skus, marks, strict=True) if any(self._mark_res[w].search(context) for w in own - common)]
        if not hits:  # 矿泉水要小瓶的 / 普洱要生的: "X的" with X in only one candidate's name or aliases
            kinds = {sku: self._kind_text[sku] for sku in mention.skus}
            for said in _KIND.finditer(context):
                for x in {said.group(1), said.group(1)[-1]}:
                    having = [sku for sku, kind in kinds.items() if x in kind]
                    if len(having) == 1 and having[0] not in hits:  # 瓶 is in both 小瓶水 and 大瓶水: no help
                        hits.append(having[0])
        if not hits:  # 8个装的月饼 / 12瓶一箱那种: a pack size only one candidate's name has
            for pack in itertools.chain(_PACK.finditer(context), _PER_PACK.finditer(context)):
                size = pack.group(1) if pack.group(1).isdigit() else str(chinese_to_int(pack.group(1)))
                having = [sku for sku in mention.skus if f"#{size}" in self._name_marks[sku]]
                hits = having if len(having) == 1 else hits
        if len(hits) != 1 and mention.start > 0:
            # 生普洱 / 小瓶农夫山泉: one or two characters right before the name that only one candidate's names have —
            # among the candidates a size left (357g的生茶饼: 357g is both 普洱's, 生 only the raw one's)
            pool = hits or list(mention.skus)
            for before in (scan.text[max(mention.start - 2, 0) : mention.start], scan.text[mention.start - 1]):
                if len(before) == 2 and before[0] in _FUNCTION_CHARS:
                    continue
                if all(_CJK_CHAR.fullmatch(c) for c in before) and before[-1] not in _FUNCTION_CHARS:  # 给pvc管: a verb
                    having = [sku for sku in pool if before in self._kind_text[sku]]
                    if len(having) == 1:
                        hits = having
                        break
        if len(hits) == 1 and len(self._kinds_named(mention, scan.text, left, right)) > 1:
            return mention.skus  # 大瓶小瓶的水 / 生熟普洱: two kinds named — never the one nearest the name (asked)
        return (hits[0],) if len(hits) == 1 else mention.skus

    def _kinds_named(self, mention: _Mention, text: str, left: int, right: int) -> set[str]:
        """The candidates of an ambiguous mention its context names by a word no other candidate has: a two-character
        word anywhere around it (大瓶 / 小瓶), or one character of the run written straight before it (生熟普洱)."""
        kinds = {sku: self._kind_text[sku] for sku in mention.skus}
        context = _NEGATED_KIND.sub(_blank, text[left : mention.start] + " " + text[mention.end : right])
        words = {
            context[i : i + 2] for i in range(len(context) - 1) if _CJK_CHAR.fullmatch(context[i]) and _CJK_CHAR.fullmatch(context[i + 1])
        }
        run = re.search(r"[\u4e00-\u9fff]{1,3}$", text[left : mention.start])
        chars = {c for c in (run.group(0) if run else "") if c not in _FUNCTION_CHARS}
        named: set[str] = set()
        for sku, kind in kinds.items():
            others = [k for s, k in kinds.items() if s != sku]
            if any(w in kind and not any(w in k for k in others) for w in words | chars):
                named.add(sku)
        return named

    def _checked(
        self, mention: _Mention, q: QuantityMatch | None, scan: _Scan, which: str = "要", how_many: str = "要"
    ) -> tuple[Product, int] | Clarify:
        """The product and whole quantity a mention + quantity stand for, or the question to ask first."""
        skus = self._resolve(mention, scan)
        if len(skus) > 1 and q is not None and q.unit is not None:  # 龙井来2罐: only one of them comes in 罐
            sold_so = tuple(s for s in skus if self._products[s].unit == q.unit)
            skus = sold_so if len(sold_so) == 1 else skus
        if len(skus) > 1:
            return self._ambiguous(mention, skus, q, which)
        product = self._products[skus[0]]
        if q is None:
            question = f"请问{mention.text}{how_many}几{product.unit}？"
            return Clarify("missing_quantity", question, [product.sku], mention.text, unit=product.unit)
        qty = self._whole_quantity(q, mention.text, product.unit, product.sku)
        if isinstance(qty, Clarify):
            return qty
        if q.dozen and product.unit not in DOZEN_UNITS:  # 一打 of a product sold by the 箱: 12箱? ask
            return Clarify(
                "unit_mismatch",
                f"{mention.text}是按{product.unit}卖的，请问您说的“{q.text.strip()}”是指{qty}{product.unit}吗？",
                [product.sku],
                mention.text,
                qty,
                product.unit,
            )
        if q.unit == TAEL and product.unit != TAEL:  # 二两 of what is sold by the 斤: how many 斤
            question = f"{mention.text}是按{product.unit}卖的，请问您要几{product.unit}？"
            return Clarify("unit_mismatch", question, [product.sku], mention.text, None, product.unit)
        if q.unit is not None and q.unit != product.unit:  # never convert 瓶 ↔ 箱: ask
            return Clarify(
                "unit_mismatch",
                f"{mention.text}是按{product.unit}卖的，请问您说的{qty}{q.unit}是指{qty}{product.unit}吗？",
                [product.sku],
                mention.text,
                qty,
                product.unit,
            )
        return product, qty

    def _checked_one(self, mention: _Mention, q: QuantityMatch) -> tuple[Product, int] | Clarify:
        """A mention already narrowed to one SKU (by a qualifier) with its quantity."""
        solo = _Scan(mention.text, mention.text, [mention], [], [])
        return self._checked(mention, q, solo)

    def _ambiguous(self, mention: _Mention, skus: Sequence[str], q: QuantityMatch | None, which: str) -> Clarify:
        names = " ".join(f"{i}. {self._products[s].name}" for i, s in enumerate(skus, 1))
        return Clarify(
            "ambiguous_product", f"请问您{which}哪一种{mention.text}：{names}？", list(skus), mention.text, _whole(q), q.unit if q else None
        )

    def _whole_quantity(self, q: QuantityMatch, name: str, unit: str, sku: str = "") -> int | Clarify:
        """q as a positive whole number ≤ max_qty, or the question to ask instead."""
        ask, v = f"请问{name}要几{unit}？", q.value
        if v is None:
            question = f"请告诉我{name}具体要几{unit}。"
        elif v <= 0:
            question = f"数量需要大于0。{ask}"
        elif v.denominator != 1:
            question = f"抱歉，{name}只能按整{unit}订购。{ask}"
        elif v > self.max_qty:
            question = f"单次最多订{self.max_qty}{unit}，{ask}"
        else:
            return int(v)
        return Clarify("invalid_quantity", question, [sku] if sku else [], name, unit=unit or None)

    def _correction(self, scan: _Scan) -> ParseResult | None:
        qs, masked = scan.quantities, scan.masked
        cue = _CORRECTION.search(masked)
        if cue is None and (restated := _RESTATE.search(masked)) and [q.start >= restated.end() for q in qs] == [True]:
            cue = restated  # 数量错了 应该是60袋: the one amount after 应该是 is the new one
        if cue is not None:
            targets = [q for q in qs if q.start >= cue.end()]
            if qs and not targets:
                return None  # 要3箱矿泉水，地址改成人民路: the 改 is about something else
        elif (
            len(qs) >= 2
            and (negate := _NEGATE.search(masked, 0, qs[0].start)) is not None
            and not any(m.start >= negate.end() and m.end <= qs[0].start for m in scan.mentions)  # not 甜甜圈不要，蛋糕1个…
            and (_REAFFIRM.search(masked, qs[0].end, qs[1].start) or _ENOUGH.match(masked[qs[1].end :]))
        ):
            targets = [qs[1]]  # 不要3箱了，要4箱 / 不是3箱，是4箱
        else:
            return None
        q = targets[0] if targets else None
        resolved = list(dict.fromkeys(self._resolve(m, scan) for m in scan.mentions))
        if len(resolved) > 1:  # 把矿泉水换成可乐 / two corrections at once: ask how
            return _unclear_correction([s for skus in resolved for s in skus])
        if not scan.mentions:
            if q is None:  # 3箱改一下: nothing to change it to
                return _unclear_correction([])
            qty = self._whole_quantity(q, "", q.unit or "")
            return qty if isinstance(qty, Clarify) else Correction(None, qty, q.unit)
        checked = self._checked(scan.mentions[0], q, scan, "要修改", "要改成")
        if isinstance(checked, Clarify):
            return checked
        product, qty = checked
        return Correction(product.sku, qty, product.unit, scan.mentions[0].text)

    def _removal(self, scan: _Scan) -> ParseResult:
        pointed = [q for q in scan.quantities if _POINTED.search(scan.masked, 0, q.start)]
        if pointed:  # 可乐那两箱去掉: the draft's line pointed at, removed whole
            scan = replace(scan, quantities=[q for q in scan.quantities if q not in pointed])
        owned = [(a, b) for a, b in _clauses(scan) if _OWN_STOCK.search(scan.masked, a, b)]
        if owned:  # 生抽算了 家里还有半瓶: the amount the customer has at home is the reason, not what is removed
            scan = replace(scan, quantities=[q for q in scan.quantities if not any(a <= q.start < b for a, b in owned)])
        if scan.quantities or not scan.mentions:
            # 减掉2箱 (by 2? down to 2?) / 3箱不要了: ask rather than guess.
            return _unclear_correction([s for m in scan.mentions for s in m.skus])
        clauses = _clauses(scan)
        struck = [
            m
            for m in scan.mentions
            if any(a <= m.start < b and (_REMOVE.search(scan.masked, a, b) or _CANCEL.search(scan.masked, a, b)) for a, b in clauses)
        ]  # 墙砖这次不进了 地砖照旧: only the items of the clauses that drop something go
        skus: list[str] = []
        for mention in struck or scan.mentions:
            resolved = self._resolve(mention, scan)
            if len(resolved) > 1:
                return self._ambiguous(mention, resolved, None, "要去掉")
            skus.extend(s for s in resolved if s not in skus)
        return RemoveItem(skus[0], tuple(skus[1:]))

    @staticmethod
    def _past_items_only(scan: _Scan, elements: Sequence[_Element]) -> bool:
        """上次买的蛋挞6个 牛角包4个，挺好的: goods of an earlier order named before any item, and no word ordering
        anything after it — a report of what was bought, not an order (上次买的可乐再来两箱 orders: 再来)."""
        past = _PAST_OPENING.search(scan.masked)
        if past is None or not elements or past.end() > elements[0].start:
            return False
        rest = _PAST_REF.sub(" ", scan.masked[past.end() :])
        return _ORDER_CUE.search(rest) is None and _ADD_CUE.search(rest) is None

    def _order(self, scan: _Scan, excluded: frozenset[_Mention] = frozenset(), full: _Scan | None = None) -> ParseResult:
        past = [q for q in scan.quantities if _PAST_AMOUNT.search(scan.masked, 0, q.start)]
        if past:  # 上次买的2饼白茶很好喝: the amount of an order already placed orders nothing now
            scan = replace(scan, quantities=[q for q in scan.quantities if q not in past])
        elements: list[_Element] = sorted([*scan.mentions, *scan.quantities], key=lambda e: e.start)
        pairs = _pair(scan, elements)
        if _PAST.search(_WHO_I_AM.sub(_blank, scan.masked)) or self._past_items_only(scan, elements):
            return NotAnOrder()
        first_amount = scan.quantities[0].start if scan.quantities else elements[0].start
        add_mode = (
            _ADD_CUE.search(scan.masked, 0, max(elements[0].start, first_amount)) is not None
            or (len(scan.quantities) == 1 and _ADD_CUE_BEFORE.search(scan.masked, 0, scan.quantities[0].start) is not None)
            or _ADD_AFTER.match(scan.masked, elements[-1].end) is not None  # 石膏板20张也给我带上
        )
        order_like = bool(pairs) or add_mode or _ORDER_CUE.search(_PAST_REF.sub(" ", scan.masked)) is not None
        pairs, qualifiers = self._qualified(scan, pairs)
        lines: dict[str, Line] = {}
        same_as_last: list[QuantityMatch] = []  # 还要一箱: a quantity with no product at all
        bound = set(pairs.values())
        by_start = {m.start: m for m in pairs}  # qualified mentions replace the originals
        mentions = [by_start.get(m.start, m) for m in scan.mentions]
        items: list[_Element] = [*mentions, *(q for q in scan.quantities if q not in bound)]
        for item in sorted(items, key=lambda e: e.start):
            if isinstance(item, _Mention) and item in qualifiers:
                continue
            if isinstance(item, _Mention) and item not in pairs and lines and _GOES_WITH.search(scan.text, 0, item.start):
                continue  # 品茗杯要一打 配盖碗用: what the cups go with, no item
            if isinstance(item, _Mention) and item not in pairs and _WRITTEN_ON.match(scan.text, item.end):
                continue  # 蛋糕上写520: where the words go, no item
            if isinstance(item, _Mention):
                checked = (
                    self._checked(item, pairs.get(item), scan)
                    if len(item.skus) > 1 or item not in pairs
                    else self._checked_one(item, pairs[item])
                )
                if isinstance(checked, Clarify):
                    return checked if order_like else NotAnOrder()
                product, qty = checked
                prior = lines.get(product.sku)  # the same SKU twice in one message: quantities add up
                lines[product.sku] = Line(
                    product.sku, qty + (prior.qty if prior else 0), product.unit, prior.matched if prior else item.text
                )
                continue
            product_text = _product_text(scan, elements, item)
            if product_text.endswith(("那种", "那款")):
                continue  # 茶具一套 6个杯子那种: describes the kind, orders nothing
            counts = item.marked or (add_mode and not product_text)  # 再加3: a bare number after 再加 counts
            if product_text.startswith(_NOT_A_PRODUCT) or not counts or _WITH_THE_GOODS.search(product_text):
                continue  # 2个人 / 房间302: not merchandise
            if lines and _FOR_WHOM.match(scan.text, item.end):
                continue  # 盖碗要俩 一个自己用一个给我妈: how the amount ordered is shared out, no further item
            if product_text:
                return Clarify("unknown_product", f"抱歉，我们暂时没有“{product_text}”。请问您要订其他商品吗？", product_text=product_text)
            if not add_mode:
                return _missing_product(item)
            same_as_last.append(item)
        if same_as_last:
            if lines or len(same_as_last) > 1:  # 再来一箱，还有2包纸巾: the 一箱 of what?
                return _missing_product(same_as_last[0])
            q = same_as_last[0]
            more = self._whole_quantity(q, "", q.unit or "")
            return more if isinstance(more, Clarify) else AddSameAsLast(more, q.unit)
        if not lines or not order_like:
            return NotAnOrder()
        left_out = _left_out(scan, elements) + tuple(
            sp.text.strip()
            for sp in scan.specs
            if not any(scan.segment(sp.start, sp.end)[0] <= m.start < scan.segment(sp.start, sp.end)[1] for m in scan.mentions)
        )  # 42.5和32.5的水泥: a size standing alone names a second item — ask, never order only the other
        if left_out:  # 要2袋大米和雪碧: never order the part understood and drop the rest in silence
            names = "、".join(f"“{t}”" for t in left_out)
            return Clarify(
                "unknown_product",
                f"抱歉，{names}我没找到对应的商品。请问您要的是哪种商品、要多少？其余的我先不下单，等您确认。",
                product_text=left_out[0],
            )
        skipped = tuple(dict.fromkeys(s for m in excluded for s in self._resolve(m, full or scan) if s not in lines))
        return OrderLines(list(lines.values()), "add" if add_mode else "new", skipped)


class _SoundAlike:
    """Product names typed with one character swapped for a homophone (雪壁 / 铁关音 / 泥子粉 / 碧罗春), found in the
    text no alias matched. Three characters or more: anywhere but inside a dictionary word. Two characters (雪壁,
    蛋达): only in an order's place — right before an amount or an order verb, or right after an amount — since
    two-character homophones of a name are common words elsewhere (可颂 / 可送吗)."""

    def __init__(self, alias_skus: dict[str, tuple[str, ...]]) -> None:
        aliases = [a for a in alias_skus if len(a) >= 2 and _CJK_RUN.fullmatch(a)]
        self._like = homophones(ch for a in aliases for ch in a)
        self._index: dict[tuple[int, int, str], list[str]] = {}
        for a in aliases:
            for k, ch in enumerate(a):
                if ch in self._like:
                    self._index.setdefault((len(a), k, a[:k] + a[k + 1 :]), []).append(a)
        self._alias_skus = alias_skus
        self._lengths = sorted({n for n, _, _ in self._index}, reverse=True)

    def find(self, text: str, masked: str, quantities: Sequence[QuantityMatch], tokenizer: jieba.Tokenizer) -> list[_Mention]:
        found: list[_Mention] = []
        for run in _CJK_RUN.finditer(masked) if self._index else ():
            i, end = run.span()
            while i < end - 1:
                hit = self._at(text, masked, i, end, quantities, tokenizer)
                found += [hit] if hit else []
                i = hit.end if hit else i + 1
        return found

    def over(
        self, text: str, mentions: Sequence[_Mention], quantities: Sequence[QuantityMatch], tokenizer: jieba.Tokenizer
    ) -> list[_Mention]:
        """Names of three characters or more typed with a homophone that hold a shorter alias already found (防水图料:
        防水 is an alias, 防水涂料 the name meant; 膨账螺丝 holds 螺丝): the longer name, replacing the shorter one."""
        out = list(mentions)
        for k, m in enumerate(mentions):
            for n in self._lengths:
                if n < 3 or n <= m.end - m.start:
                    continue
                hit = next(
                    (
                        h
                        for i in range(max(0, m.end - n), m.start + 1)
                        if i + n <= len(text)
                        and _CJK_RUN.fullmatch(text[i : i + n])
                        and not any(q.start < i + n and i < q.end for q in quantities)
                        and not any(o is not m and o.start < i + n and i < o.end for o in mentions)
                        and (h := self._at(text, text, i, i + n, quantities, tokenizer)) is not None
                        and h.end - h.start == n
                    ),
                    None,
                )
                if hit is not None:
                    out[k] = hit
                    break
        return out

    def _at(
        self, text: str, masked: str, i: int, end: int, quantities: Sequence[QuantityMatch], tokenizer: jieba.Tokenizer
    ) -> _Mention | None:
        for n in self._lengths:
            if i + n > end:
                continue
            window = masked[i : i + n]
            for k in range(n):
                for alias in self._index.get((n, k, window[:k] + window[k + 1 :]), ()):
                    if (
                        window[k] in self._like[alias[k]]
                        and not tokenizer.FREQ.get(window)
                        and (n > 2 or _in_order_place(text, i, i + n, quantities))
                    ):
                        return _Mention(i, i + n, window, self._alias_skus[alias])
        return None


_ORDER_VERB_AFTER = re.compile(
    r"\s*(?:[0-9一二两三四五六七八九十俩仨半壹贰叁肆伍陆柒捌玖拾廿卅]|来|要|拿|给|订|定|买|称|整|搬|送|也要|也来|再来|再要|多来|多要|多拿|多加|各|都|每)"
)


def _in_order_place(text: str, start: int, end: int, quantities: Sequence[QuantityMatch]) -> bool:
    """Right before an amount or an order verb (雪壁来四箱, 蛋达15个), or right after an amount (两箱雪壁)."""
    if _ORDER_VERB_AFTER.match(text, end):
        return True
    before = text[:start].rstrip().removesuffix("的").rstrip()
    return any(q.end == len(before) and q.unit for q in quantities)


_NOT_THE_OTHER_KIND = re.compile(r"(?<=[\x00的])(?:不要|不是|别要)")
# A kind said not to be wanted (龙井要明前的不要雨前): it names no candidate
_NEGATED_KIND = re.compile(r"(?:不要|不是|别要|别拿|不拿)的?[\u4e00-\u9fff\d.]{1,4}?(?=的|[^\u4e00-\u9fff\d.]|$|[拿要来买订整])")


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group(0))


def _own_kind_start(text: str, end: int, start: int) -> int:
    """Where the next product's own words begin: at its name, or, when a sign parts it from the mention before
    (2.5的线 4平方的线), at that sign — the size after the sign is the next product's."""
    sign = re.search(r"[\s,，、;；]", text[end:start])
    return end + sign.start() if sign is not None and text[start - 1 : start] == "的" else start


def _typo_variants(alias: str) -> list[str]:
    """The alias with one character replaced by the homophone customers type for it by mistake (cue_words.toml
    [homophone_typos]: 鸡蛋 → 鸡旦, 蛋挞 → 蛋塔). Two characters or more only: a one-character alias is never
    guessed at."""
    if len(alias) < 2:
        return []
    typos = homophone_typos()
    return [alias[:k] + typo + alias[k + 1 :] for k, ch in enumerate(alias) for typo in typos.get(ch, ())]


def _said_of_a_product(scan: _Scan, at: int) -> bool:
    """The nearest thing before ``at`` is a product, at most two characters away with no sign between (法棍今天算了)."""
    before = [e for e in (*scan.mentions, *scan.quantities) if e.end <= at]
    last = max(before, key=lambda e: e.end, default=None)
    return isinstance(last, _Mention) and re.fullmatch(r"[\u4e00-\u9fff]{0,2}", scan.text[last.end : at]) is not None


def _clauses(scan: _Scan) -> list[tuple[int, int]]:
    """The (start, end) of each clause: text between clause-ending signs (a point inside 32.5 ends none)."""
    ends = (k for k, ch in enumerate(scan.text) if ch in _CLAUSE_END and not _DECIMAL_POINT.match(scan.text, k - 1))
    bounds = [-1, *ends, len(scan.text)]
    return [(a + 1, b) for a, b in itertools.pairwise(bounds) if b > a + 1]


def _within_clause(scan: _Scan, mention: _Mention) -> _Scan:
    """The scan with everything outside the mention's clause blanked: what settles a name said "not" to is in its
    own clause (不要奶油蛋糕了 周六送一个10寸水果蛋糕: the 10寸 is the cake wanted, not the one refused)."""
    a, b = next(((a, b) for a, b in _clauses(scan) if a <= mention.start < b), (0, len(scan.text)))

    def blank(text: str) -> str:
        return " " * a + text[a:b] + " " * (len(text) - b)

    inside = [m for m in scan.mentions if a <= m.start < b]
    return _Scan(blank(scan.text), blank(scan.masked), inside, [q for q in scan.quantities if a <= q.start < b], [])


def _as_correction(result: OrderLines) -> ParseResult:
    """A self-correcting message about one product, sent while a draft is open, is a change of that line."""
    if len(result.lines) != 1 or result.mode != "new":
        return result
    line = result.lines[0]
    return Correction(line.sku, line.qty, line.unit, line.matched)


def _left_out(scan: _Scan, elements: list[_Element]) -> tuple[str, ...]:
    """Item-like text after 和 / 还有 / 、 with neither a product nor a quantity (要2袋大米和雪碧): not understood."""
    found: list[str] = []
    for s, e in scan.separators:
        if scan.text[s:e].strip() not in _ITEM_JOINERS:
            continue
        left, right = scan.segment(e, e)
        right = min([right, *(el.start for el in elements if el.start >= e)])
        if any(left <= el.start < right for el in elements) or right <= e:
            continue
        raw = scan.text[e:right]
        cleaned = _TRAIL_FILLER.sub("", _LEAD_FILLER.sub("", raw)).strip()
        cleaned = _VAGUE_AMOUNT.sub("", cleaned).strip()
        if _NEGATED.search(cleaned) or _CANCEL.search(cleaned):
            continue  # 白糖家里还有不用买: what is not wanted need not be understood
        named_next = any(e <= m.start <= right + 2 for m in scan.mentions)
        if (re.fullmatch(_SPEC_WORD, cleaned) or _PACK.fullmatch(cleaned)) and named_next:
            continue  # 8寸和10寸的蛋糕 / 还要6个装的月饼: a size or pack of the product named next (not 跟4平方的 一样一卷)
        if (
            _HAS_WORD.search(cleaned)
            and not cleaned.startswith(_NOT_A_PRODUCT)
            and not _NOT_AN_ITEM.search(cleaned)
            and not _WITH_THE_GOODS.search(cleaned)
        ):
            found.append(cleaned)
    return tuple(dict.fromkeys(found))


_SPEC_UNIT_ZH = {"l": ("升",), "ml": ("毫升",), "kg": ("公斤", "千克"), "g": ("克",)}


def _spec_forms(token: str) -> list[str]:
    """550ml → 550ml, 550毫升 and a bare 550 (marked '#'): the ways a customer names a size (550的矿泉水, dn50)."""
    number = re.search(r"\d+(?:\.\d+)?", token)
    assert number is not None
    unit = token[number.end() :]
    forms = [token] if token != number.group(0) else []
    if unit and number.start() > 0:  # bv4平方 → 4平方 too: the size as said, without the code letters
        forms.append(token[number.start() :])
    return [*forms, *(number.group(0) + zh for zh in _SPEC_UNIT_ZH.get(unit, ())), "#" + number.group(0)]


# Characters that stand before a product name as words of their own (给 / 要 / 和 …), never as a kind of it.
_FUNCTION_CHARS = frozenset("给要来买拿订定的和跟与及把再也都送帮替我你他她们这那个了吧啊呢吗就还先各称搬整弄配带捎")


def _mark_pattern(mark: str, unit_alt: str) -> str:
    if mark.startswith("#"):  # a bare size number: 550的 / 42.5水泥 / 550那种 — never 5桶 (a quantity)
        # …nor a size in another measure (6寸 is no 6个装, 500克 no 500ml), nor a time, a date, money or an address
        # (8点前送 settles no 8寸 cake)
        return (
            rf"(?<![0-9.a-z]){re.escape(mark[1:])}"
            rf"(?![0-9.a-z]|\s*(?:{unit_alt}|寸|毫升|升|公斤|千克|克|斤|米|平方|平|点|号|日|月|年|时|分|元|块|岁|楼|层|栋|室|路|人|折|度|%))"
        )
    # a mark ending in a letter or digit must end there (550ml is no 550ml2); one ending in a character may run
    # straight into the next size (6寸8寸的蛋糕: both sizes named)
    after = "(?![a-z0-9])" if re.search(r"[a-z0-9]$", mark) else ""
    return rf"(?<![0-9.a-z]){re.escape(mark)}{after}"


def _whole(q: QuantityMatch | None) -> int | None:
    return int(q.value) if q is not None and q.value is not None and q.value.denominator == 1 else None


def _missing_product(q: QuantityMatch) -> Clarify:
    return Clarify("missing_product", f"请问您要的{q.text.strip()}是什么商品？", qty=_whole(q), unit=q.unit)


def _unclear_correction(skus: list[str]) -> Clarify:
    return Clarify("unclear_correction", "请问要怎么修改？请一次改一种商品，例如“矿泉水改成4箱”或“去掉纸巾”。", list(dict.fromkeys(skus)))


def _mask(text: str, spans: Sequence[_Mention | QuantityMatch]) -> str:
    chars = list(text)
    for s in spans:
        chars[s.start : s.end] = _MASK * (s.end - s.start)
    return "".join(chars)


def _merge_adjacent(mentions: list[_Mention], text: str, alias_skus: dict[str, tuple[str, ...]] | None = None) -> list[_Mention]:
    """生抽 + 酱油 (or 农夫山泉 矿泉水) written together name one product: keep the SKUs both allow. And js防水 + 涂料
    read apart where 防水涂料 is an alias too: the longer reading that shares a product with the first wins."""
    merged: list[_Mention] = []
    for m in mentions:
        prev = merged[-1] if merged else None
        # 2.5线4平方线 / 42.5的水泥 复合水泥就不要了: the first already has a size of its own — two items, no merge
        two_sizes = (
            prev is not None
            and (m.text[:1].isdigit() or m.start > prev.end)
            and re.search(r"\d(?:\.\d+)?[a-z平方寸毫升]*的?\s*$", text[: prev.start]) is not None
        )
        if prev is not None and not two_sizes and text[prev.end : m.start].strip() in ("", "的"):  # 冰皮的月饼 (not 2.5线4平方线)
            common = tuple(s for s in prev.skus if s in m.skus)
            if not common and alias_skus and prev.end == m.start:
                overlap = (alias_skus.get(text[k : m.end], ()) for k in range(prev.start + 1, prev.end))
                common = next((tuple(s for s in prev.skus if s in skus) for skus in overlap if set(skus) & set(prev.skus)), ())
            if common:
                merged[-1] = _Mention(prev.start, m.end, text[prev.start : m.end], common)
                continue
        merged.append(m)
    return merged


def _pair(scan: _Scan, elements: list[_Element]) -> dict[_Mention, QuantityMatch]:
    """Bind quantities to products: nearest neighbour, one to one, never across another element;
    矿泉水和纸巾各3箱 binds one quantity to every product before 各."""
    pairs: dict[_Mention, QuantityMatch] = {}
    for k, el in enumerate(elements):
        if isinstance(el, QuantityMatch) and _EACH.search(scan.masked, 0, el.start):
            nxt: _Element = el
            for prev in reversed(elements[:k]):
                if not isinstance(prev, _Mention) or prev in pairs:
                    break
                if nxt is not el and _SHARING_JOINER.fullmatch(scan.masked, prev.end, nxt.start) is None:
                    break  # 两箱小瓶水然后纯奶也拿一箱: only products joined as one list share the amount
                pairs[prev] = el
                nxt = prev
            after = elements[k + 1 :]
            if (k == 0 or not isinstance(elements[k - 1], _Mention)) and len(after) > 1 and all(isinstance(e, _Mention) for e in after):
                # 各来一箱可乐雪碧 / 都要两箱 可乐雪碧: the amount first, every product after it (and nothing else) shares it
                if _EACH_FIRST.search(scan.masked, 0, el.start):
                    pairs.update((nxt, el) for nxt in after if isinstance(nxt, _Mention))
    candidates: list[tuple[int, int, int, _Mention, QuantityMatch]] = []
    for a, b in itertools.pairwise(elements):
        mention, q = (a, b) if isinstance(a, _Mention) else (b, a)
        if not isinstance(mention, _Mention) or not isinstance(q, QuantityMatch):
            continue
        left, _ = scan.segment(a.start, a.end)
        leader = next(e for e in elements if e.start >= left)  # the segment's word order wins ties
        gap = b.start - a.end + _SEPARATOR_GAP * scan.separators_between(a.end, b.start)
        candidates.append((gap, 0 if type(leader) is type(a) else 1, a.start, mention, q))
    used = set(pairs.values())
    for *_, mention, q in sorted(candidates, key=lambda c: c[:3]):
        if mention not in pairs and q not in used:
            pairs[mention] = q
            used.add(q)
    _pair_same_as_before(scan, elements, pairs)
    return pairs


# 可乐要两箱，雪碧也要 / 雪碧也是 / 雪碧一样: a product with no amount of its own, saying "the same" and nothing else
_SAME_AMOUNT = re.compile(r"\s*(?:也(?:要|是|来|拿)?|也?(?:一样|同样|照样))(?:的|吧|哈|啊|呀|哦|嘛)?[\s,.!~、。]*$")


def _pair_same_as_before(scan: _Scan, elements: list[_Element], pairs: dict[_Mention, QuantityMatch]) -> None:
    """An unpaired product followed only by 也要 / 也是 / 一样 (up to the next element or the end) takes the amount of
    the product named just before it, when that one has an amount: 可乐3箱 雪碧也一样 → 雪碧 3箱."""
    for k, el in enumerate(elements):
        if not isinstance(el, _Mention) or el in pairs or k == 0:
            continue
        end = elements[k + 1].start if k + 1 < len(elements) else len(scan.masked)
        if _SAME_AMOUNT.match(scan.masked, el.end, end) is None:
            continue
        prev = elements[k - 1]
        q = prev if isinstance(prev, QuantityMatch) else pairs.get(prev)
        if q is not None and q in pairs.values():
            pairs[el] = q


def _product_text(scan: _Scan, elements: list[_Element], q: QuantityMatch) -> str:
    """What an unbound quantity seems to be for (要3箱雪碧 → 雪碧), with chat filler trimmed; '' if none."""
    left, right = scan.segment(q.start, q.end)
    left = max([left, *(e.end for e in elements if e.end <= q.start)])
    right = min([right, *(e.start for e in elements if e.start >= q.end)])
    for raw in (scan.text[q.end : right], scan.text[left : q.start]):
        cleaned = _TRAIL_FILLER.sub("", _LEAD_FILLER.sub("", raw))
        if _HAS_WORD.search(cleaned):
            return cleaned.strip()
    return ""
