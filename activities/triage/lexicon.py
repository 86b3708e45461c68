"""Cue concepts shared by Chinese and English: "压扁", "crushed" and "dented" all become the
feature `@crushed`. They are features with learned weights, not answers: the classifier
decides what a concept means for each question, and a text without any concept is still
classified by its words. With a few hundred examples split over two languages, this is
what lets an English example teach the model about a Chinese one and back.
"""

from __future__ import annotations

import re

CONCEPTS: dict[str, tuple[str, ...]] = {
    # what the goods are like
    "spoiled": ("发霉", "霉", "长毛", "变质", "馊", "酸了", "是酸的", "臭", "异味", "哈喇",
                "胀袋", "不新鲜", "烂", "过期", "mold", "mould", "rancid", "stale", "rotten",
                "gone bad", "went off", "off smell", "spoiled", "smells", "sour"),
    "foreign_body": ("虫", "头发", "异物", "玻璃", "颗粒", "鱼刺", "bug", "insect", "hair",
                     "glass", "foreign", "particle", "worm"),
    "broken": ("坏了", "失灵", "不工作", "没反应", "不制冷", "漏水", "漏电", "故障", "断了",
               "掉了", "开胶", "起球", "缩水", "连击", "坏点", "没声音", "闪烁", "鼓包", "冒烟",
               "stopped working", "broke", "broken", "faulty", "defective", "doesn't work",
               "won't", "leaks", "crackles", "drift", "peeling", "fell apart", "split",
               "not respond", "error", "overheat", "shrank"),
    "repair": ("维修", "修", "保修", "售后服务", "上门", "送修", "repair", "warranty",
               "technician", "fix", "service center", "fixed"),
    # what arrived
    "other_item": ("发错", "送错", "错了", "拿错", "不是我买的", "不是我点的", "型号不对",
                   "对不上", "不一样的", "instead", "wrong", "different", "someone else",
                   "somebody else", "not what i ordered", "i ordered", "我买的是", "我下的是",
                   "下单的是", "订的是", "点的是", "买的是", "要的是"),
    "size_colour": ("尺码", "码", "颜色", "色", "size", "colour", "color", "model"),
    "short": ("少了", "少发", "漏发", "缺", "只收到", "只有", "没有附带", "没收到", "不见了",
              "空的", "只到了", "只来了", "少送", "missing", "only", "short", "without",
              "wasn't in", "weren't in", "empty", "left out"),
    "crushed": ("压扁", "压坏", "压变形", "压裂", "压破", "压弯", "碎", "破了", "破损", "摔",
                "洒", "漏了", "塌", "凹", "砸", "裂", "撞", "变形", "颠", "crushed", "smashed",
                "dented", "cracked", "shattered", "squashed", "leaked", "spilled",
                "ripped", "torn", "bent", "dropped", "thawed", "化了", "化"),
    "package": ("箱子", "包装", "外包装", "盒子", "快递箱", "纸箱", "袋子", "box", "packaging",
                "parcel", "carton", "package", "bag"),
    "transit": ("运输", "路上", "物流", "快递", "配送", "骑手", "送到", "到货", "到的时候",
                "in transit", "courier", "delivery", "arrived", "on arrival", "rider",
                "driver"),
    "slow": ("还没到", "还没发货", "没发货", "晚了", "迟到", "超时", "慢", "延迟", "等了",
             "没更新", "不动", "才到", "才送到", "才发", "次日达", "预计", "还没动静", "催",
             "late", "delayed", "still not", "waiting", "hasn't arrived", "not arrived",
             "no update", "pushed back", "rescheduled",
             "promised", "estimated"),
    "vanished": ("丢", "遗失", "丢件", "找不到", "没收到", "已签收", "代签", "妥投", "签收",
                 "lost", "vanished", "never received", "never arrived", "never got",
                 "marked as delivered", "says delivered", "untraceable", "misrouted",
                 "declared", "locker"),
    "not_as_described": ("宣传", "描述", "图片", "图", "色差", "实物", "不符", "页面", "广告",
                         "号称", "写的是", "说是", "标题", "参数", "虚假", "配料表", "标签",
                         "listing", "advertised", "described", "description", "photo",
                         "pictured", "product page", "label", "says", "listed",
                         "misleading"),
    "staff": ("客服", "态度", "骑手态度", "店员", "工作人员", "不耐烦", "挂", "骂", "拉黑",
              "不理", "推卸", "踢皮球", "没人", "敷衍", "套话", "agent", "staff", "rude",
              "hung up", "support", "impatient", "ignored", "condescending", "shouted",
              "laughed", "callback", "nobody answers", "no reply", "attitude"),
    "money": ("价", "差价", "降价", "扣", "扣费", "多付", "收费", "钱没退", "优惠券", "满减",
              "会员价", "积分抵扣", "运费", "定金", "退差价", "多收", "charged", "price",
              "overcharg", "coupon", "promo", "discount", "fee", "billed", "refund the difference",
              "payment", "paid", "twice", "double", "tax", "price protection"),
    "own_choice": ("不想要", "不喜欢", "不太喜欢", "后悔", "下错单", "点错", "选错", "买多了",
                   "用不上", "七天无理由", "无理由", "冲动", "不需要了", "取消", "未拆封",
                   "没拆", "吊牌", "changed my mind", "don't like", "no longer need",
                   "unopened", "sealed", "by mistake", "my fault", "tags", "decided",
                   "don't need", "prefer", "gift", "cancel", "not needed", "unworn"),
    "account_info": ("发票", "账号", "账户", "地址", "积分", "会员卡", "短信", "营销", "app",
                     "小程序", "闪退", "验证码", "请问", "想问", "咨询", "invoice", "account",
                     "receipt", "points", "unsubscrib", "promotional", "website", "email",
                     "how do i", "is there a way", "do you", "personal data", "firmware",
                     "bug", "register"),
    # what the customer asks for
    "wants_refund": ("退款", "退钱", "退一下", "退差价", "钱退", "refund", "money back",
                     "reimburse"),
    "wants_return": ("退货", "退回", "寄回", "退掉", "要退", "无理由", "return", "send back",
                     "send it back", "sending back", "returning"),
    "wants_exchange": ("换货", "换一", "换成", "换个", "调换", "换新", "补发", "exchange",
                       "replacement", "swap", "replace"),
    # how it is said
    "anger": ("太过分", "忍无可忍", "受够", "恶心", "垃圾", "骗", "欺诈", "气死", "什么服务",
              "这算什么", "appalling", "ridiculous", "unacceptable", "disgusting", "unbelievable",
              "fed up", "enough", "joke"),
    "polite": ("谢谢", "麻烦", "辛苦", "喜欢", "不着急", "不要紧", "建议", "很好", "满意",
               "thank", "thanks", "please", "love", "lovely", "great", "no rush",
               "not urgent", "happy", "appreciate"),
    "urgent": ("医院", "发烧", "过敏", "安全", "着火", "冒烟", "婴儿", "宝宝", "老人", "糖尿病",
               "明天就要", "hospital", "allerg", "danger", "safety", "fire", "smoke", "baby",
               "elderly", "tomorrow", "wedding", "婚礼"),
}

_PATTERNS = {name: re.compile("|".join(re.escape(w.lower()) for w in sorted(
    words, key=len, reverse=True))) for name, words in CONCEPTS.items()}


def concepts(text: str) -> list[str]:
    """The concept features of a normalised (lower-cased) text, once per hit."""
    found: list[str] = []
    for name, pattern in _PATTERNS.items():
        found.extend(f"@{name}" for _ in pattern.finditer(text))
    return found
