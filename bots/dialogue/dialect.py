"""Cantonese written the way Guangdong and Hong Kong customers type it, read as the Mandarin the rest of the dialogue
understands: 有冇 → 有没有, 几多 → 多少, 唔要 → 不要, 送唔送得到 → 送不送得到, 嘅 → 的, 咗 → 了.

Words, not characters: a phrase table applied longest first, after traditional characters are simplified. Only
words a shop's chat uses (quantities, questions, yes and no, time, fetching and sending, cheap and dear) and none
that is also a Mandarin word a catalog might use: 系 becomes 是 only where Cantonese uses it as the verb (系咪 /
系呀 / 唔系), never inside 关系 or 系列.
"""

from __future__ import annotations

import re

_PHRASES = {
    # yes, no, is it
    "系唔系": "是不是",
    "系咪": "是不是",
    "唔系": "不是",
    "系呀": "是啊",
    "系啊": "是啊",
    "系嘅": "是的",
    "冇错": "没错",
    "冇问题": "没问题",
    "啱呀": "对啊",
    "唔啱": "不对",
    "啱啱": "刚刚",
    "得唔得": "行不行",
    "使唔使": "要不要",
    "要唔要": "要不要",
    "有冇": "有没有",
    "唔该晒": "谢谢",
    "唔该": "麻烦",
    "多谢晒": "谢谢",
    "唔使": "不用",
    "唔好": "不要",
    "唔": "不",
    "冇": "没有",
    # words
    "咩价": "什么价",
    "点卖": "怎么卖",
    "同埋": "和",
    "都要埋": "也要",
    "加埋": "加上",
    "㗎": "啊",
    "都系": "都是",
    "卖晒": "卖完",
    "啱晒": "对",
    "就咁啦": "就这样吧",
    "就咁": "就这样",
    "落单": "下单",
    "落咗单": "下了单",
    "头先": "刚才",
    "好食": "好吃",
    "落雨": "下雨",
    "快啲": "快点",
    "当我冇讲过": "当我没说过",
    "阿拉": "我们",
    "屋里厢": "家里",
    "侬": "你",
    "就酱": "就这样",
    "几多银": "多少钱",
    "几多钱": "多少钱",
    "几多": "多少",
    "乜嘢": "什么",
    "咩嘢": "什么",
    "边个": "哪个",
    "边度": "哪里",
    "喺边": "在哪",
    "点样": "怎么样",
    "点解": "为什么",
    "而家": "现在",
    "今日": "今天",
    "听日": "明天",
    "琴日": "昨天",
    "寻日": "昨天",
    "下昼": "下午",
    "晏昼": "中午",
    "朝早": "早上",
    "搞掂": "搞定",
    "平啲": "便宜点",
    "平d": "便宜点",
    "嘅": "的",
    "咗": "了",
    "啲": "点",
    "俾": "给",
    "畀": "给",
    "嚟": "来",
    "睇": "看",
    "攞": "拿",
    "揾": "找",
    "仲": "还",
    "嘢": "东西",
    "喺": "在",
    "咁": "这么",
    "靓": "好",
    "讲": "说",
    "几耐": "多久",
    "送返": "送",
    "食咗": "吃了",
    "食饭": "吃饭",
    "就噉": "就这样",
    "噉": "这样",
    "落嘅单": "下的单",
    # other regions written as spoken: Shanghai 覅 / 搿能 / 额 (的), Sichuan 莫 (别), Henan 恁 (你) and 中 (行)
    "覅": "不要",
    "就搿能": "就这样",
    "搿能": "这样",
    "好额": "好的",
    "订额": "订的",
    "买额": "买的",
    "莫要": "不要",
    "莫拿": "别拿",
    "莫送": "别送",
    "莫买": "别买",
    "莫带": "别带",
    "恁家": "你家",
    "就恁弄": "就这么弄",
    "恁": "你",
    "包咗佢": "包了它",
    "佢": "它",
    "系咩": "是什么",
}
_WORD = re.compile("|".join(map(re.escape, sorted(_PHRASES, key=len, reverse=True))))
_CANTONESE = re.compile(
    r"[唔冇嘅咗啲俾畀嚟睇攞揾仲嘢喺咁靓啱侬㗎覅噉搿恁]|咩$|系[咪呀啊嘅唔]|几多|边个|边度|而家|听日|琴日|下昼|搞掂|平啲|咩价|点卖|同埋|都系|卖晒|落单|头先|好食|落雨|阿拉|就酱"
    r"|几耐|送返|好额|订额|买额|莫(?:要|拿|送|买|带)|未(?=[呀啊呢]*(?:老板|师傅|老细)?[\s?？!！。~]*$)|佢|系咩"
)


# 系 the verb (唔系两盒系三盒 / 大红袍系正岩的咩) — in a message already read as Cantonese, never 关系 / 系列 / 联系
_IS_AMOUNT = re.compile(r"(?<![关联体派世直旁嫡院星關聯體])[系係](?![统列数統數])(?=\s*[\d\u4e00-\u9fff])")
_WHAT_END = re.compile(r"咩(?=[\s?？!！。~]*$)")  # 系正岩嘅咩: a question's end
_NOT_YET_END = re.compile(r"未(?=[呀啊呢]*(?:老板|师傅|老细)?[\s?？!！。~]*$)")  # 出咗车未 / 食咗饭未呀: "yet?" closing a question


def from_cantonese(text: str) -> str:
    """``text`` with written Cantonese words replaced by their Mandarin; text without any returned as it is."""
    if not _CANTONESE.search(text):
        return text
    return _NOT_YET_END.sub("没", _WHAT_END.sub("吗", _IS_AMOUNT.sub("是", _WORD.sub(lambda m: _PHRASES[m.group(0)], text))))
