"""Traditional → Simplified characters for shop chat (礦泉水 → 矿泉水, 醬油 → 酱油, 兩箱 → 两箱).

A small built-in table, not a full converter: the characters customers in Hong Kong, Taiwan and overseas
write when they order, ask about stock, prices and delivery, or complain — product words, units, numerals,
cue words (要 / 還要 / 不要 / 改成 / 確認) and question words. One character to one character, so spans found
in the converted text are spans of the original. A character missing here only means that word is not
understood, and the dialogue then asks (never a partial order in silence).
"""

from __future__ import annotations

_PAIRS = (
    # goods and what they come in
    "礦矿 醬酱 麵面 麥麦 紙纸 餐餐 樂乐 飲饮 滷卤 雞鸡 鴨鸭 鵝鹅 魚鱼 蝦虾 蟹蟹 豬猪 牛牛 腸肠 餅饼 "
    "乾干 糧粮 穀谷 漿浆 蔥葱 薑姜 蘿萝 蔔卜 蘋苹 棗枣 檸柠 橘橘 鹽盐 醃腌 燒烧 烤烤 滷卤 湯汤 粉粉 "
    "啤啤 茶茶 瓶瓶 罐罐 聽听 條条 隻只 張张 雙双 塊块 顆颗 箱箱 袋袋 盒盒 桶桶 捆捆 卷卷 "
    "衛卫 濕湿 鍋锅 壺壶 盤盘 巾巾 葉叶 潔洁 淨净 劑剂 燈灯 電电 線线 煙烟 蠟蜡 "
    # numerals and money
    "兩两 萬万 億亿 個个 幾几 錢钱 價价 貴贵 費费 減减 總总 餘余 "
    # ordering, changing, confirming
    "訂订 買买 賣卖 來来 給给 還还 再再 選选 換换 變变 刪删 掉掉 別别 讓让 請请 確确 認认 單单 "
    "對对 錯错 說说 樣样 這这 們们 嗎吗 麼么 謝谢 與与 發发 運运 郵邮 遞递 貨货 庫库 現现 "
    "剩剩 齊齐 夠够 幫帮 時时 間间 點点 號号 週周 後后 從从 裡里 裏里 邊边 過过 進进 "
    "優优 惠惠 劵券 會会 開开 關关 問问 題题 聯联 繫系 顧顾 戶户 處处 壞坏 爛烂 漏漏 "
    "丟丢 遲迟 慢慢 沒没 無无 將将 應应 該该 準准 備备 種种 東东 貼贴 實实 廠厂 門门 "
    "報报 據据 為为 麻麻 煩烦 啊啊 呢呢 吧吧 囉啰 嘛嘛 喔喔 聽听 試试 換换 隨随 帶带 "
    "國国 內内 話话 車车 區区 縣县 鎮镇 樓楼 層层 棟栋 號号 碼码 標标 記记 圖图 片片 "
    "頌颂 餅饼 黃黄 撻挞 膩腻 膠胶 絲丝 機机 磚砖 廣广 島岛 紅红 蓋盖 裝装 鹹咸 碗碗 罐罐 "
    "釘钉 鋼钢 筋筋 鋁铝 鐵铁 銅铜 閥阀 龍龙 觀观 音音 綠绿 壺壶 盞盏 瓷瓷 碼码 "
    "塗涂 層层 牆墙 鋪铺 磁磁 燈灯 開开 關关 漆漆 鍍镀 鋅锌 線线 纜缆 噸吨 車车 "
    "麵面 蔬蔬 菓果 蘭兰 蝦虾 鮮鲜 乳乳 酪酪 優优 麥麦 燕燕 蛋蛋 糕糕 鬆松 軟软 "
    "厲厉 團团 規规 勞劳 歲岁 壽寿 誕诞 節节 慶庆 賀贺 禮礼 盒盒 寫写 畫画 "
    "當当 經经 層层 漲涨 降降 貨货 態态 況况 達达 收收 簽签 辦办 補补 退退 錯错 結结 帳账 賬账 欠欠"
)

TRADITIONAL_TO_SIMPLIFIED: dict[int, int] = {ord(pair[0]): ord(pair[1]) for pair in _PAIRS.split() if len(pair) == 2 and pair[0] != pair[1]}


def to_simplified(text: str) -> str:
    """The text with the traditional characters of the table replaced, character for character."""
    return text.translate(TRADITIONAL_TO_SIMPLIFIED)
