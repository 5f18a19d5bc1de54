"""Structural cues: the shape of a question, a complaint or a postponement, rather than a list of phrasings.

The cue lists of ``cue_words.toml`` (read by :mod:`bots.dialogue.understanding`) name what customers have been
seen to type (多少钱, 几点送); they miss the next customer's wording (多钱一瓶, 下午三点前能到不). The cues here look at how a Chinese chat
message is built instead:

- a question: a particle at the end of a clause (吗 呢 不 没 么 嘛 伐), an A-not-A form (能不能 送不送 会不会),
  an interrogative word (多少 几点 啥 什么 怎么 哪 多久), a question mark;
- what it asks about: a delivery verb (送 寄 发 运 拉 到 收到) with a time (几点 今天 下午 多久 三点前), a price word
  (价 钱 卖 贵) or 多少 beside a per-unit amount (多少一瓶 / 一方多少);
- a complaint: the goods' state after delivery (碎成渣 湿透了 压扁了 是空的), a mismatch (订的8寸送来的是6寸),
  a shortfall (少寄了 少给), an attribute that is wrong (颜色不对), a lateness with reproach (说好10点 拖到下午);
- a postponement: a decision put after a condition (好喝再买 / 量完再定 / 看了再跟你说).

Every function takes the masked text (products and quantities blanked by ``\\x00``, see ``OrderParser.survey``)
so a product name is never read as a cue, and returns the match that decided it — the evidence.
"""

from __future__ import annotations

import re
from typing import Final

_Q = "\x00"  # the parser's mask: a product or a quantity stood here

# ---- questions -----------------------------------------------------------------------------------------------
# A particle ending a clause: 今天能到不 / 包邮吗 / 香米贵不 / 发了没 / 多久能收到呢. Not 先不 / 不不 (a retraction).
_END_PARTICLE: Final = re.compile(
    r"(?<![先不还])(?:吗|嘛|么|(?<!着)(?<!着.)呢|不|没有?|伐|否)[啊呀哈吖的呢哇嘞嘛]*\s*[?？!！~。.…]*(?=[\s,，。;；!！?？]|$)"
)
_A_NOT_A: Final = re.compile(r"([\u4e00-\u9fff])[不没]\1")  # 能不能 送不送 包不包 会不会 有没有
_INTERROGATIVE: Final = re.compile(
    r"多少|(?<![过隔等这个])几(?=[点天号时日块毛钱寸年种家周]|个?人|分钟|个?小时|个?月|个?星期|个?礼拜|厘|毫米?|公分|cm|mm)|(?<!没)啥(?!的)|(?<!没)什么(?!的)|神马|怎么(?!回事)|咋|哪|"
    r"多久|多长|多会|多大|多重|多远|多厚|多宽|多高|多快|如何|[?？]|"
    r"是否|能否|可否|有木有|有没得|有莫得|"  # written forms of 是不是 / 能不能, dialect forms of 有没有
    r"(?:能|会)(?:准时|按时)?(?:送)?(?:到|好|做好)(?:的)?吧|"  # 今天能到吧 / 能准时到吧: asks to be reassured
    r"(?<![在行好])吗(?=[\u4e00-\u9fff])|"  # 可以送到酒店吗就是那个万豪酒店: dictated, no sign after the question
    r"(?:能|可以|会)[^\s,，。]{1,16}?不(?=[我俺咱])|"  # 能送到清河路18号不我家老爷子…: the same, before the next clause
    r"(?:能|可以|会)(?:送|到|拉|运|寄|发)[^\s,，。]{0,14}?不(?![用要行了够好是会能可需必太到算少多错])(?=[\u4e00-\u9fff])"
)
# 行吗 / 可以吗 / 中不 / 好不好 after goods and an amount: a request put politely (整3箱青岛送过来中不), not a question.
# 听到没有 / 记住了吗 / 知道不: a tag checking that the shop took the request in, no question about the goods.
_PERMISSION_TAG: Final = re.compile(
    # 好 as a result of a verb (做好吗 / 包好没) asks whether it is done, no tag
    r"(?:行|可以|中|(?<![做烤弄备搞办修装写包准])好|成|得行|方便)(?:吗|么|嘛|不|伐|没)[?？]*|行不行|可不可以|好不好|中不中|"
    r"(?:听到|听见|记住|记下|(?<![能会以到])收到|知道|明白|晓得)(?:了)?(?:没有?|吗|么|不|伐)|"  # not 周五前能收到不
    # 能不能给我 / 可不可以帮我 + the goods: a request put as a question (能不能给我送3箱可乐)
    r"(?:能不能|可不可以|能否|可否)(?:给我|帮我|帮忙|替我)|"
    r"(?<=\x00)嘛(?=[\s,，。!！]|$)|"  # 给我称2斤嘛: 嘛 after the amount asks the shop to do it
    # …and 能帮我 … 不 / 可以给我 … 吗 around the goods (能帮我送两袋东北大米上来不)
    # (the goods inside it: 后天能给我送到县城那边吗, with the goods before, asks whether they deliver there)
    r"(?:能|可以|麻烦)(?:帮我|给我|帮忙|替我)[^,，。?？\x00]{0,8}\x00[^,，。?？]{0,16}?(?:吗|么|嘛|不|伐)(?=[\s,，。?？!！]|$)"
)


# A or B? — 走京东还是顺丰 / 要大的还是小的; not 还是6箱吧 (a correction) nor a 还是 opening the message.
# Nor 还是 meaning "still" (地址还是原来的 / 还是老样子 / 还是一样): nothing to choose between.
_ALTERNATIVE: Final = re.compile(
    r"(?<=\S)还是(?![^\s,，。;；!！]*吧)(?!原来|原先|以前|之前|上次|上回|老|一样|照旧|那个|那家|那里|那儿)(?=\S)"
)
# A wh-word repeated around a verb is no question but "whichever": 啥时候方便啥时候送 / 哪天有空哪天来 / 要多少给多少.
_FREE_CHOICE: Final = re.compile(r"(啥时候|什么时候|哪天|几点|哪个|哪里|多少|啥|什么)([^\s,，。?？]{1,6}?)\1")


def without_free_choice(masked: str) -> str:
    """The masked text with a "whichever" phrase (啥时候方便啥时候送) blanked, same length."""
    return _FREE_CHOICE.sub(lambda m: " " * len(m.group(0)), masked)


def question_cue(masked: str) -> re.Match[str] | None:
    """The mark that makes the message a question, if any."""
    return _INTERROGATIVE.search(masked) or _A_NOT_A.search(masked) or _END_PARTICLE.search(masked) or _ALTERNATIVE.search(masked)


# An A-not-A question about the goods (够不够 / 是不是 / 甜不甜 / 新不新鲜 / 会不会) — not one asking the shop to do
# something (能不能 / 可不可以 / 给不给 / 送不送 …: a request put politely, README rule 2).
_A_NOT_A_ASKED: Final = re.compile(r"(?<![不没])(?![能可行中好给帮送拉发来成要不没])([\u4e00-\u9fff])[不没]\1")  # not 不对不对


def a_not_a_question(masked: str) -> re.Match[str] | None:
    """够不够一桌人喝 / 是不是新的: asks about the goods, whatever amount it names."""
    return _A_NOT_A_ASKED.search(masked)


def interrogative_cue(masked: str) -> re.Match[str] | None:
    """A question word (多少 几天 什么 怎么 哪 多久), not only a particle: the message asks something."""
    return _INTERROGATIVE.search(masked)


def permission_only(masked: str) -> bool:
    """The only question in it is 行吗 / 可以吗 / 中不, beside goods and an amount: it asks the shop to do
    something (送到学校门口可以不, with no goods named, asks whether they deliver there)."""
    tag = _PERMISSION_TAG.search(masked) if _Q in masked else None
    if tag is None:
        return False
    rest = masked[: tag.start()] + masked[tag.end() :]
    return question_cue(rest) is None


# ---- delivery ------------------------------------------------------------------------------------------------
# A delivery verb: 送 寄 运 拉 (a truck) 到 (arrive) 收到 发 (ship) — 发 only as shipping (发货 发快递 当天发 能发吗).
_DELIVERY_VERB: Final = re.compile(
    r"送(?!点|个|一|些|礼|几|人|朋友|长辈|领导|客户|老师|什么好|啥好|给(?:我们家|我家|我爸|我妈|亲家|老人|长辈|朋友|领导|客户|老师|孩子|家里))|寄|运(?!气)|快递|物流|配送|上门|自提|邮政|ems|京东|中通|圆通|韵达|来得及|赶得上|赶得及|拉(?:过来|过去|到|得|走|货|吗|不)|收到|(?<![买找])到(?![了底处时货]|什么时候|啥时候|哪天|几号)|(?:来|到店|店里|自己|上门)(?:拿|取)|"
    r"发(?=货|快递|顺丰|什么|啥|哪|出|过来|吗|不|么|\s|$)|[能当今明]天?发|"
    # ready to collect: 能做好吗 / 烤出来没 (a pre-order's pickup, like its delivery)
    r"(?:做|烤|准备|备)(?:好|出来)"
)
# When: 几点 / 多久 / 什么时候 / 今天 / 下午 / 三点前 / 一个小时 / 周末 — or an A-not-A / end particle on the verb.
_WHEN: Final = re.compile(
    r"几点|几号|几天|几时|多久|多长时间|多会儿?|什么时候|啥时候|哪天|何时|多快|当天|今天|明天|后天|明早|明晚|今晚|上午|下午|"
    r"晚上|早上|中午|傍晚|周[一二三四五六日天末]|星期|礼拜|\d{1,2}\s*点|(?<![看好快慢多少大小贵宜些])[一二两三四五六七八九十]{1,3}点|"
    r"(?:\d+|[一二两三四五六七八九十半])\s*(?:个?小时|分钟|天)(?:内|之内|以内)?|前能|之前"
)


_CLAUSE: Final = re.compile(r"[^\s,，。;；!！~、]+")


def delivery_cue(masked: str) -> re.Match[str] | None:
    """A question about when / whether / how goods get to the customer: 下午三点前能到不 / 多久送到 /
    月饼礼盒能寄外地吗 / 快递一般走哪家. The delivery verb and the question mark sit in one clause (在吗 送3箱水
    greets, then orders); the verb is the evidence."""
    if permission_only(masked):  # 可乐三箱 送过来行不: asks the shop to do it (README rule 2)
        return None
    for clause in _CLAUSE.finditer(masked):
        text = clause.group(0)
        verb = _DELIVERY_VERB.search(text)
        if verb is not None and question_cue(text) is not None and not permission_only(text):
            return verb
    return None


# Done yet? — a delivery verb with a completed aspect and 没 / 了吗 (拉走没 / 送出来没有): about an order placed.
_DONE_YET: Final = re.compile(
    r"(?:走|出来|出去|出门|出发|送|发|拉|寄|(?:做|烤|准备)好)(?:快递|货|出来|出|出去|过来)?(?:了)?(?:没有?|了吗|了么|了没)(?![用事法问关意])"
)
# 我的水泥 / 我的东西 / 我的茶叶发快递了没: goods already ordered — 我的 and a short noun before a delivery verb
_MINE: Final = re.compile(
    rf"我(?:们|家)?(?:工地|店|家|公司|单位|那边|这边)?的(?:{_Q}|东西|货|单|[\u4e00-\u9fff]{{1,4}}?(?=(?:还|都|怎么|咋)?(?:发|送|寄|到|拉)))"
)


# what the shop can do, or a day still to come, before the verb: 下午能送没 / 可以预约时间送没 / 周日送货没
_CAN: Final = re.compile(
    r"(?:能|可以|会|还|也)\S{0,8}$|(?:明天|后天|周[一二三四五六日天末]|星期|礼拜|节前|节后|期间|假期|过年|以后)\S{0,4}$"
)


def can_or_later(masked: str, at: int) -> bool:
    """What stands before ``at`` is what the shop can do or a day to come (能送没 / 周末发货没): 没 there asks a
    plain question, not whether an order placed is done."""
    return _CAN.search(masked, 0, at) is not None


def about_an_order_placed(masked: str) -> re.Match[str] | None:
    """A delivery question about goods already ordered: 我的水泥拉走没 / 我的东西送出来没有 — not one about what the
    shop can do (下午能送没 / 晚上还送没: 没 as a plain question particle)."""
    done = _DONE_YET.search(masked)
    if done is not None and _CAN.search(masked, 0, done.start()):
        done = None
    return done or _MINE.search(masked) or _ON_THE_WAY.search(masked)


# 司机还有多久到 / 送货的师傅到哪了 / 快递员怎么还没来: someone is already bringing it — an order placed
_ON_THE_WAY: Final = re.compile(
    r"(?:司机|送货的|配送员|快递员|快递小哥|骑手|外卖员)(?:师傅|大哥)?\S{0,4}?(?:还有?|到哪|在哪|多久|几点|什么时候|啥时候|到门口|到楼下|到了)"
    r"|送\S{0,2}师傅(?!明天|后天|下周)\S{0,4}?(?:到哪|在哪|多久|几点|什么时候|啥时候)"  # 送水师傅大概几点能到
)


def delivery_time_cue(masked: str) -> re.Match[str] | None:
    """A delivery question that asks *when* (送到幸福小区要多长时间): stronger than 多长 read as a size. Not a
    request with a time put politely (蛋糕一个 周六送来行吗: the message asks the shop to do it, README rule 2)."""
    if permission_only(masked):
        return None
    for clause in _CLAUSE.finditer(masked):
        text = clause.group(0)
        if delivery_cue(text) is not None and (when := _WHEN.search(text)) is not None:
            return when
    return None


# ---- price ---------------------------------------------------------------------------------------------------
_PER_UNIT_HOW_MUCH: Final = re.compile(rf"多少\s*{_Q}|{_Q}\s*(?:现在|今天|今年|目前)?\s*多少")  # 多少一瓶 / 一方多少 / 可乐多少
_WHAT_IT_IS: Final = re.compile(
    rf"{_Q}\s*是[^{_Q}\d\s]{{1,8}}?的?(?:吗|么|嘛|不|伐|没)"  # 牛角包是黄油的吗 / 的不
    rf"|{_Q}\s*是\S{{1,10}}?的(?:吗|么|嘛|伐)"  # 泰国香米是一袋10公斤的吗: an amount inside, asked about
)
_TOTAL_HOW_MUCH: Final = re.compile(
    r"整[箱件袋提盒桶包]\S{0,2}多少|(?:卖|加起来|一共|总共|算下来|合计|总计|共计|总价|拢共|统共|全部)\S{0,3}多少"
)
_DEAR: Final = re.compile(
    r"贵(?:不|吗|么|嘛|伐|啊不)|(?:涨|降)(?:价|了)\S{0,2}(?:吗|没|不|么|嘛)|(?:哪个|哪种|哪款|(?<!家)(?<!人)(?<!隔壁)(?<!网上)(?<!外面)比|还是)\S{0,8}便宜|便宜还是"
)  # not 能便宜多少: a discount; nor 别人家比你便宜 (another shop held up: bargaining)


def price_cue(masked: str) -> re.Match[str] | None:
    """A price question not worded as the price lists have it: 生抽多少一瓶 / 金龙鱼现在卖多少 / 香米贵不 /
    雪花跟青岛哪个便宜 (a comparison, not a request for a discount)."""
    return _DEAR.search(masked) or _TOTAL_HOW_MUCH.search(masked) or _PER_UNIT_HOW_MUCH.search(masked) or _WHAT_IT_IS.search(masked)


def comparison_cue(masked: str) -> re.Match[str] | None:
    """哪个便宜 / 比河沙便宜多少: which is cheaper is a price question, though it says 便宜."""
    return _DEAR.search(masked)


# Something given free with a purchase: 买得多能送几个蛋挞不 / 买10箱送一箱吗 — 送 right before an amount, after 买.
_FREE_EXTRA: Final = re.compile(rf"(?:买|订|拿)[^,，。\s]{{0,10}}?送{_Q}+(?![^,，。\s]*(?:过来|过去|到|上门|上楼))")


# 送两包纸巾呗 / 送几个螺丝吧 (goods, then a particle asking a favour, no 过来 / 到 / 上门): given free, not delivered.
# 送盒螺丝呗 / 送两卷胶带呗
_GIFT_ASKED: Final = re.compile(rf"送(?:我|俺|给我|点|些)?\s*[个盒包袋箱瓶把套]?\s*{_Q}+[\u4e00-\u9fff]{{0,4}}\s*(?:吧|呗|嘛|呀|哈|啊)")
# 茶盘能不能送一个 (beside a big purchase or a draft): a gift asked, not a delivery
_GIFT_ASKED_AS_QUESTION: Final = re.compile(rf"(?:能不能|可不可以|能|可以)送(?:我|给我)?\s*[个盒包袋箱瓶把套]?\s*{_Q}+\s*(?:吗|么|不|呗|$)")
_LOYALTY: Final = re.compile(r"老顾客|老客户|老主顾|常来|白送|免费")


def gift_asked(masked: str, has_draft: bool) -> re.Match[str] | None:
    """Goods asked for free: with a draft (the customer is buying already) or beside 老顾客 / 白送; otherwise
    送两箱水吧 may just ask for delivery and is left to the order rules."""
    m = _GIFT_ASKED.search(masked) or _GIFT_ASKED_AS_QUESTION.search(masked)
    given = (
        has_draft
        or _LOYALTY.search(masked)
        or _BUYS_A_LOT.search(masked)
        or (m is not None and m.group(0).startswith(("送我", "送俺", "送给我")))
    )
    return m if m is not None and given else None  # 送我几盒螺丝呗 / 买这么多 送两包纸巾呗: asked as a favour


# Two bare sums, the second to settle at (总共236 算230吧 / 128就算120吧): haggling. Read on the text (bare numbers are
# masked as amounts); a unit other than money (算3箱吧) is an amount, not a price, and is left alone.
_SUM = r"(?<![\d.])\d+(?:\.\d+)?\s*(?:块钱|块|元)?"  # a sum of money, written in digits
_SETTLE = r"\s*(?:吧|呗|得了|好了|行不|行吗|可以不|可以吗|中不)"  # …asked to be settled at
_HAGGLE: Final = re.compile(
    rf"{_SUM}的?[\s,，]*(?:就|那就)?算\s*(?:你|我)?\s*{_SUM}{_SETTLE}"
    # …or the lower sum simply asked for (1280 给个1200吧 / 530收500行不)
    rf"|(?=\d{{2}}){_SUM}的?[\s,，]*(?:就|那就)?(?:给个?|收|卖|算个)\s*(?=\d{{2}}){_SUM}{_SETTLE}"
)
# A unit price offered, asking whether the shop sells at it (28一箱卖不卖 / 30块一袋行不行): bargaining. Read on the text
# (a unit price is no quantity, but its number is still a digit there).
_PRICE_OFFERED: Final = re.compile(
    rf"{_SUM}\s*(?:一|每|/)\s*[\u4e00-\u9fff]\s*(?:的话)?[\s,，]*"
    r"(?:卖不卖|卖吗|卖不|行不行|行吗|行不|可以吗|可以不|中不|成不)"
)
# Buying a lot, given as a reason (买的多 / 买了这么多 / 量大): beside a delivery charge, asking to be let off it
_BUYS_A_LOT: Final = re.compile(
    r"(?:买|拿|订|要)(?:的|得|了)?(?:挺|这么|那么|很|蛮|比较|好)?多(?!少)|量(?:大|多)"  # not 买多少
    r"|(?:这么|那么|好)多(?:东西|货|\x00)|东西(?:这么|挺|蛮|很)?多|好几单|老(?:客户|顾客)|常(?:来|买)|"  # 这么多东西配送费就别收了吧
    r"(?:就|也)?(?:别|不要|甭|免|不)(?:收|算)(?:了|啦)?(?:吧|呗|嘛)"  # the fee waived: asked as an exception
    r"|上[万千]了|(?:每周|每天|每个月|经常|一直|天天)(?:都)?(?:在你|在你们|来你|找你)"  # 这单都上万了 / 我每周都在你这买
    r"|(?:担|出|包|承担|免)了?(?:它)?(?:吧|呗|嘛|啦)|(?:你们?|店里)(?:来)?(?:出|包|承担)"  # 车费你们担了呗 / 运费那50能不能你们出
    r"|买了(?:好)?几(?:百|千|万)|好几(?:百|千|万)|(?:五六|好几|七八)样"  # 能不能包邮 买了好几百呢 / 拿了五六样了
    r"|都买(?:了)?(?:两|几|好几|三)次|小?一万|一千多|买(?:了|得)不少"  # 都买两次了 / 买了小一万的货
)


def haggle_cue(text: str) -> re.Match[str] | None:
    """总共236 算230吧: a sum named, then a lower one to settle at; 28一箱卖不卖: a unit price offered."""
    return _HAGGLE.search(text) or _PRICE_OFFERED.search(text)


def buys_a_lot(masked: str) -> re.Match[str] | None:
    """能包邮不 买的多: the reason a customer gives for asking an exception to the delivery rule (rule 3)."""
    return _BUYS_A_LOT.search(masked)


def free_extra_cue(masked: str) -> re.Match[str] | None:
    """Asking for goods free with an order (a discount), not for delivery."""
    return _FREE_EXTRA.search(masked)


# ---- complaints ----------------------------------------------------------------------------------------------
# The goods' state: a damage word that has happened (了 / 的 / 成 / 得 / 透 / 掉) — 碎成渣 / 湿透了 / 压扁了.
_DAMAGED: Final = re.compile(
    # not 易碎的 / 怕压坏 / 防漏的: a property of the goods or a worry, nothing that happened
    r"(?<![易怕防耐抗晒热不])(?<!刚才)(?<!我)(?<!忘)(?:碎|裂|烂|破|漏|霉|锈|塌|扁|歪|断|湿|脏|臭|馊|化|坏|瘪|凹|磕|蔫|焦|崩|糊)(?:了|的|成|得|掉|透|开|啦|末|渣|口)|"
    r"都焦|崩口|结成块|结成坨|没法用|没法吃|不好(?:吃|喝|用|闻)|发[黑黄霉绿]|一点\S{0,4}都(?:没有|不(?!要|用))|"
    r"(?:压|摔|磕|碰|撞|砸|挤|泡|蹭|刮|弄|搞)(?:坏|扁|碎|烂|裂|破|瘪|变形|花|脏|伤)|(?:胀|鼓)(?:包|袋|了)|"
    r"根本(?:不|没|用不)|(?:凝固|粘|贴|装|拧|打)不(?:了|上|住|开|动|紧)(?![吗么嘛呢])|没人(?:理|管|回|应)|"
    r"没(?:气|味|劲)了|没(?:熟|烤熟|煮熟|发好)|不熟|夹生|(?:是|被|有人)(?:拆|开封|开过|打开过|动过|用过)|是旧的|"
    # the service: no answer for a long time (客服半天不回消息 / 打电话一直没人接)
    r"(?:半天|一直|好久|老是|总是|几天)(?:都)?(?:不|没人?)(?:回|理|接|搭理)|"
    r"没(?:气|味|劲)了|(?:硬|酸|苦|咸|干|臭|脏|烂|难吃|难喝|馊|腥)得|(?:咬|嚼|切|撕|拧)不(?:动|开|烂)|拉肚子|肚子疼|过敏了|吃坏|喝坏|吃了不舒服|喝了不舒服|就(?:断|碎|裂|烂|破|坏|掉|裂开|脱落)|起皮|掉色|褪色|掉渣|"
    r"是空的|是酸的|是馊的|是臭的|是歪的|太次|好次|很次|真次|"
    # how it tastes, smells or feels once used: 喝着酸了 / 吃着发酸 / 闻起来有股味 / 用着漏水
    r"(?:喝|吃|闻|尝|用|摸|穿|泡)(?:着|起来|了)\S{0,3}?(?:酸|苦|涩|臭|馊|怪|哈喇|不对|不新鲜|发[酸苦臭黑]|有股|漏|扎|疼)|"
    r"(?:洗|擦|刷|去|弄|抠)不(?:掉|干净|下来)|"
    r"(?<!不)(?:太|好|真|这么|那么|特别|非常|贼|巨)(?:凶|差|烂|难吃|难喝|难闻|硬|咸|苦|涩|脏|臭|坑|慢|敷衍|干|腻|淡|稀|酸)(?![吗么不])|"
    r"一点(?:都|也)?不(?:软|甜|香|新鲜|脆|酥|好)"
)
# Something in or on the goods that should not be: 有个缺口 / 有股烟味 / 有根头发 / 有霉点.
_FOREIGN: Final = re.compile(
    r"有(?:个|股|些|点|根|只|块|好多|很多|一股|一根|一只|好几[个根只块])?\S{0,2}?"
    r"(?:缺口|裂缝|裂纹|划痕|杂质|异物|霉|虫|头发|毛|蚂蚁|苍蝇|石子|石头|沙子|塑料|玻璃|铁丝|烟味|怪味|异味|酸味|馊味|泥|黑点|斑点|黑斑|污渍|污点|锈)|"
    # the goods full of what should not be in them: 米里全是沙子 / 都是碎渣
    r"(?:全是|都是|净是)(?:沙子?|石子|虫|渣|碎的|碎渣|霉|灰|泥|水)"
)
# What came is not what was asked: 订的8寸送来的是6寸 / 要的42.5送的32.5 / 叫你送青岛你送雪花.
_MISMATCH: Final = re.compile(
    r"(?:订|要|买|(?<![早一有差半])点|下)的.{0,12}?(?<![再还也多])(?:送|发|寄|给|拿|来)(?:来|过来|了)?的?(?:是|成)?"
    rf"(?=[{_Q}\d]|是)|(?:送|发|寄|给|拿|收到|到)(?:来|过来|了)?的\S{{0,6}}?是.{{1,12}}?(?:我|俺)?(?:要|订|买|点|下单)的|(?:送|发|寄|给|拿|收到|到)(?:来|过来|了)?的\S{{0,6}}?是\S{{1,8}}?不是|叫你送.{{1,10}}?你?(?:送|发|拿)(?:了|的|成)?"
)
_SHORTFALL: Final = re.compile(
    # ordered N, only M came: 订了3个只给了2个 / 30袋只到了25袋 / 才收到
    rf"(?:只|才|就)(?:送来|送到|寄来|寄到|发来|拿来|收到|拿到|给|到|送|来|发|剩)了?\s*{_Q}(?!\S{{0,3}}(?:得了|算了|吧|呗|行不|行吗|好了))|"
    r"(?<!多)少(?:送|发|寄|装|找)了?|(?<!多)少给了|多(?:收|扣)了|(?<!多)少了?(?:一|两|几)?个(?!\S{0,2}(?:吗|呢))|"
    # weighed or counted and found short, or told one amount and found another: 称了才八两 / 说是一斤 到手只有八两
    rf"(?:称|量|数|点)(?:了|过|出来)(?:一下|下)?[^\n,，。]{{0,6}}?(?:才|只有|就|不到|不够)\s*{_Q}|说(?:好)?(?:是|的)\s*{_Q}.{{0,12}}?(?:才|只有)\s*{_Q}"
)
_WRONG_ATTRIBUTE: Final = re.compile(
    r"(?:颜色|味道|尺寸|数量|大小|规格|型号|重量|分量|斤两|长度|厚度|口味|花色|款式|(?<![提取拿拉进])货|东西|数|字|日期)\S{0,2}?"
    r"(?:(?<!对)不对|对不上|不一样|不符|有问题|太差|(?<!行)不行|(?<!够)不够|不足)"  # not 货够不够: asked
)
# Lateness with a reproach (lateness alone is order_status): 说好10点送 拖到下午才来.
# Lateness alone (说好9点送的 现在还没来) is order_status (README rule 4): a complaint when it came late (才来) or a
# promise was broken (说好写生日快乐 结果没写).
_LATE_REPROACH: Final = re.compile(r"说好(?:的)?.{0,12}(?:才|结果|却|居然|竟然)|拖到|拖了|搞啥|搞什么")


_AMOUNT_WRONG: Final = re.compile(r"(?:数量|数目|个数|数)\S{0,2}?(?:不对|错了|写错了|搞错了|弄错了|不够)")


def amount_wrong(masked: str) -> re.Match[str] | None:
    """可乐数量不对: said of a draft, the amount that follows is a change; said of goods received, a complaint."""
    return _AMOUNT_WRONG.search(masked)


# What was ordered, then what came (订的是给水管送来全是排水管 / 我要的是50管 你给我拉的20管): the wrong goods
_GOT_OTHER: Final = re.compile(
    r"(?:订|要|买|拍|(?<![早一有差半])点|下单)的(?:明明)?是.{1,15}?(?:送来|拉来|发来|寄来|送过来|拉过来|到手|收到)(?:的)?(?:全|都|却|咋|怎么)?(?:是|成)?"
    r"|(?:订|要|买|(?<![早一有差半])点)的(?:明明)?是.{1,15}?(?:给我|你们?|咋|怎么)(?:给我)?(?:拉|送|发|寄|装|拿)(?:了|的|成)"
    r"|(?:订|要|买|(?<![早一有差半])点)的(?:明明)?是.{1,15}?(?:怎么|咋|却|结果)(?:给我|送来|发来|拿来|来了)"  # 我订的是冰皮 怎么给我广式的
    r"|(?:订|要|买|(?<![早一有差半])点)的.{1,12}?(?:一看|打开|拆开)(?:居然|竟然|却)?是"  # 我订的冰皮 拿回家一看是广式
    r"|说好的?.{1,12}?(?:给我的|送来的|拿来的|寄来的|发来的|到手的?)(?:明明|明显|居然|竟然)?是"  # 说好的8寸给我的明显是6寸
)
_HYPOTHETICAL: Final = re.compile(r"(?:会不会|会|怕|担心|容易|别|不要|小心|防止|以免)\S{0,4}$")  # 会不会压坏: not happened


def complaint_cue(masked: str) -> re.Match[str] | None:
    """Damaged, foreign matter, the wrong goods, too few, a wrong attribute, a late delivery with a reproach —
    damage that has happened (蛋糕送过去会不会压坏 asks about delivery)."""
    damaged = _DAMAGED.search(masked)
    if damaged is not None and _HYPOTHETICAL.search(masked, 0, damaged.start()):
        damaged = None
    return (
        _MISMATCH.search(masked)
        or _GOT_OTHER.search(masked)
        or _SHORTFALL.search(masked)
        or _WRONG_ATTRIBUTE.search(masked)
        or damaged
        or _FOREIGN.search(masked)
        or _LATE_REPROACH.search(masked)
    )


# ---- postponement --------------------------------------------------------------------------------------------
# A decision put after a condition: 好喝再多买 / 量完再定 / 看了再跟你说 / 确认了人数再订 — 再 + a verb of deciding
# or telling, with no amount right after it (再订两箱 is an addition, not a postponement).
_DECIDE_LATER: Final = re.compile(
    rf"再(?:多)?(?:买|订|定|决定|下单|拿)(?![^\s,，。]{{0,3}}{_Q})|再(?:跟|和|给|同)?(?:你|您)?(?:说|讲|联系|回复|答复)|"
    r"再(?:找|告诉|通知|问)(?:你|您)|(?<!下次)(?<!下回)再来(?:买|订|拿|定|挑|看)|了再(?:订|买|定|拿)|(?:喝喝|吃吃|用用|试试|尝尝)看|回头(?:再)?(?:告诉|跟|和|联系|找)|暂时(?:不|用不|没)|用不上|"
    r"(考虑|比较|商量|研究|琢磨|想)\1|我再(?:想想|看看|考虑|比较|商量|琢磨)|"
    # come (back) and look later / depends on something: 有空再过来看看 / 看天气吧
    r"再(?:过来|来|去)看看|(?<![要来买订拿])看(?!看)[\u4e00-\u9fff]{1,3}吧(?=[\s,，。!！~]|$)"
)
# Checking at home / asking someone first: 我先看看家里还有没有米 / 回去问问我爸 / 问问朋友几个人来.
_CHECK_FIRST: Final = re.compile(
    r"看看家里|回(?:去|家)看看|先(?:算算|量量|算一下|量一下|查查|合计合计)|(?:看看|问问|量量|算算|查查|看下|问下|量下)\S{0,10}再(?:说|订|定|买|决定|告诉|联系|来)|(?:回去|回家|(?<!想)先)问(?:问|下|一下)|我(?:先|再)问(?:问|下|一下)|"
    r"(?<!让我)(?<!叫我)问(?:问|下|一下)(?:我|家|孩子|朋友|同|领导|他|她|爸|妈|工|业主|设计)|(?:看看|问问)\S{0,6}要不要|"
    r"等.{0,10}再(?:订|定|买|说|找|联系|跟|告诉|看)|"
    # someone else decides, or the answer comes later: 我跟业主商量下 / 回头量好了尺寸告诉你
    r"(?:跟|和|同)(?:我|家里|家人|老婆|老公|业主|领导|老板|朋友|同事|他|她|孩子|爸|妈)\S{0,3}商量|"
    # asking someone else how much is needed (问问工头要多少 / 问下师傅要几包) — not 问一下 可乐多少钱, nor asking the shop
    r"问(?:问|下|一下)(?![你您])[^\s,，]{1,8}?(?:要多少|要几|要不要|需要多少|用多少|够不够)(?!钱|块|元|毛)|"
    r"回头.{0,10}(?:告诉|联系|通知|回复|发给|找)(?:你|您)"
)


# 这周先不要了 with nothing named: not now. Beside a product it is negation in a list (大米3袋，油先不要).
_NOT_NOW: Final = re.compile(r"先不要|先不用|先不需要|先算了|这[周回次](?:先)?(?:不要|不需要|算了)")


def postpone_cue(masked: str) -> re.Match[str] | None:
    """Not now: the order waits on a condition, a check at home, someone else's say."""
    if _Q not in masked and (m := _NOT_NOW.search(masked)):
        return m
    return _CHECK_FIRST.search(masked) or _DECIDE_LATER.search(masked)


def checks_first(masked: str) -> re.Match[str] | None:
    """A postponement that outranks a question in the same message (我先看看家里还有没有米)."""
    return _CHECK_FIRST.search(masked)
