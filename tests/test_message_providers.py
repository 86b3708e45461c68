"""The SMS, WeChat and webhook providers against local fakes (simulators/providers.py)
that recompute each documented signature from the raw request and answer in the
providers' own shapes: what a fake accepted is what the provider would have received."""

from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path

import httpx
import pytest

from activities.providers import (
    ALIYUN_RULES,
    TENCENT_RULES,
    WECHAT_RULES,
    AliyunSmsSender,
    Backoff,
    ProviderError,
    TemplateConfigError,
    TencentSmsSender,
    WebhookSender,
    WeChatSender,
    aliyun_signature,
    aliyun_string_to_sign,
    clip,
    e164,
    load_templates,
    retry_after,
    tc3_authorization,
)
from activities.senders import (
    LoggingSender,
    OutgoingMessage,
    PermanentDeliveryError,
    load_sender,
    senders_from_settings,
)
from activities.signing import webhook_signature
from aftersales.settings import Settings
from simulators.providers import FakeAliyunSms, FakeTencentSms, FakeWebhookGateway, FakeWeChat
from web.webhooks import signature as courier_signature

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "https://shop.example.com"
TOKEN = "Zq3vT0b9xN4kLm2Pw8Rs6Yu1Ha5Jd7Fc"  # token_urlsafe(24): 32 characters
LINK = f"{PUBLIC}/s/{TOKEN}"
OPENID = "oX7a_5bQ9cRz1dYe3fWg2hVi4jU0"
OTHER_OPENID = "oX7a_5bQ9cRz1dYe3fWg2hVi4jU9"
CASE = "AS-7K2M9Q4TXB"

ALIYUN_TEMPLATES = f"""
[case_opened]
template = {{ "zh-CN" = "SMS_100", en = "SMS_101" }}
params = [
  {{ name = "case", from = "case_id" }},
  {{ name = "token", from = "customer_url", link = true, prefix = "{PUBLIC}/s/" }},
]

[info_requested]
template = "SMS_200"
params = [
  {{ name = "case", from = "case_id" }},
  {{ name = "question", from = "question" }},
  {{ name = "token", from = "customer_url", link = true, prefix = "{PUBLIC}/s/" }},
]
"""

TENCENT_TEMPLATES = f"""
[case_opened]
template = "1000001"
params = [{{ from = "case_id" }}, {{ from = "customer_url", link = true, prefix = "{PUBLIC}/s/" }}]

[info_requested]
template = "1000002"
params = [{{ from = "case_id" }}, {{ from = "question" }},
          {{ from = "customer_url", link = true, prefix = "{PUBLIC}/s/" }}]
"""

WECHAT_TEMPLATES = """
[info_requested]
template = "TPL-INFO"
page = "customer_url"
params = [
  { name = "character_string1", from = "case_id" },
  { name = "thing2", from = "question" },
  { name = "name3", from = "recipient_name" },
]
"""


def message(template: str = "case_opened", to: str = "13800138000", locale: str = "zh-CN",
            medium: str = "message", **params) -> OutgoingMessage:
    return OutgoingMessage(
        key=f"{CASE}:3", message_id=f"<{CASE}.3.abc@shop.example.com>", medium=medium,
        to=to, to_name="王芳", locale=locale, subject=f"工单 {CASE}", body=f"正文\n{LINK}\n",
        case_id=CASE, template=template,
        params={"case_id": CASE, "customer_url": LINK, "desk_url": f"{PUBLIC}/desk/cases/x",
                "public_url": PUBLIC, **params})


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


class Sleeps(list):
    """An injected sleep that only records the waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# --- Alibaba Cloud SMS ---------------------------------------------------------------


def test_aliyun_signature_matches_the_official_sdk():
    """Known answer, computed with aliyun-python-sdk-core's rpc_signature_composer and
    sha_hmac1 for these parameters (the SDK itself is not a dependency)."""
    params = {"AccessKeyId": "testid", "Action": "SendSms", "Format": "JSON",
              "OutId": "AS-7K2M9Q4TXB:3", "PhoneNumbers": "13800138000",
              "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试",
              "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
              "SignatureVersion": "1.0", "TemplateCode": "SMS_154950909",
              "TemplateParam": '{"code":"AS-7K2M9Q4TXB","reason":"a b*c~d"}',
              "Timestamp": "2024-05-01T08:30:00Z", "Version": "2017-05-25"}
    string_to_sign = aliyun_string_to_sign("POST", params)
    assert string_to_sign.startswith("POST&%2F&AccessKeyId%3Dtestid%26Action%3DSendSms")
    assert "%2522a%2520b%252Ac~d%2522" in string_to_sign  # space %20, * %2A, ~ kept
    assert aliyun_signature("testsecret", string_to_sign) == "tnyGPDx3T5D6V27XvVDWasGN+Ko="


@pytest.fixture
def aliyun(tmp_path):
    fake = FakeAliyunSms("LTAI-test", "aliyun-secret", "好店售后",
                         {"SMS_100": ["case", "token"], "SMS_101": ["case", "token"],
                          "SMS_200": ["case", "question", "token"]})
    with fake.serve() as server:
        settings = Settings().with_(
            public_url=PUBLIC, message_sender="aliyun", aliyun_access_key_id="LTAI-test",
            aliyun_access_key_secret="aliyun-secret", aliyun_sign_name="好店售后",
            aliyun_endpoint=server.url,
            sms_templates=write(tmp_path, "aliyun.toml", ALIYUN_TEMPLATES))
        yield fake, settings


def test_aliyun_sends_the_registered_template_with_its_parameters(aliyun):
    fake, settings = aliyun
    sender = AliyunSmsSender(settings)
    sender.send(message())
    sender.send(message(locale="en", to="+86 138-0013-8001"))
    zh, en = fake.accepted
    assert (zh["PhoneNumbers"], zh["TemplateCode"], zh["SignName"], zh["OutId"]) == \
        ("13800138000", "SMS_100", "好店售后", f"{CASE}:3")
    assert zh["TemplateParam"] == {"case": CASE, "token": TOKEN}  # the link's rest, whole
    assert (en["PhoneNumbers"], en["TemplateCode"]) == ("13800138001", "SMS_101")


def test_aliyun_refuses_a_request_signed_with_another_secret(aliyun):
    fake, settings = aliyun
    sender = AliyunSmsSender(settings.with_(aliyun_access_key_secret="not-the-secret"))
    with pytest.raises(ProviderError, match="SignatureDoesNotMatch") as refused:
        sender.send(message())
    assert not isinstance(refused.value, PermanentDeliveryError)  # mend the key, it sends
    assert "13800138000" not in str(refused.value)  # Aliyun echoes its string to sign
    assert fake.accepted == []


def test_aliyun_throttling_is_waited_out_with_backoff_and_fresh_nonces(aliyun):
    fake, settings = aliyun
    fake.script.extend(["throttle", "throttle"])
    sleeps = Sleeps()
    AliyunSmsSender(settings, sleep=sleeps).send(message())
    assert sleeps == [0.5, 1.0]
    assert fake.requests == 3 and len(fake.accepted) == 1
    assert len(fake.nonces) == 3  # each attempt signed anew (a reused nonce is refused)


def test_aliyun_throttling_that_lasts_is_an_ordinary_failure(aliyun):
    fake, settings = aliyun
    fake.script.extend(["throttle"] * 10)
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match=r"isv.BUSINESS_LIMIT_CONTROL") as failed:
        AliyunSmsSender(settings, sleep=sleeps, backoff=Backoff(attempts=4)).send(message())
    assert not isinstance(failed.value, PermanentDeliveryError)
    assert sleeps == [0.5, 1.0, 2.0] and fake.requests == 4 and fake.accepted == []


def test_aliyun_refuses_an_invalid_number_for_good(aliyun):
    fake, settings = aliyun
    with pytest.raises(PermanentDeliveryError, match=r"isv.MOBILE_NUMBER_ILLEGAL"):
        AliyunSmsSender(settings).send(message(to="12345"))
    assert fake.accepted == []


def test_aliyun_answering_500_is_an_ordinary_failure_left_to_the_outbox(aliyun):
    fake, settings = aliyun
    fake.script.append("error500")
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="500") as failed:
        AliyunSmsSender(settings, sleep=sleeps).send(message())
    assert not isinstance(failed.value, PermanentDeliveryError)
    assert fake.requests == 1 and sleeps == []


def test_aliyun_text_is_cut_to_35_characters_and_the_link_is_not(aliyun):
    fake, settings = aliyun
    question = "请提供商品背面的序列号照片，以及包装盒上的条形码，\n还有购买凭证。" * 3
    AliyunSmsSender(settings).send(message("info_requested", question=question))
    values = fake.accepted[0]["TemplateParam"]
    assert len(values["question"]) == 35 and values["question"].endswith("…")
    assert "\n" not in values["question"] and values["question"].startswith("请提供商品背面")
    assert values["token"] == TOKEN


def test_a_message_without_an_sms_template_is_refused_for_good(aliyun):
    fake, settings = aliyun
    with pytest.raises(PermanentDeliveryError, match="no SMS template for 'case_cancelled'"):
        AliyunSmsSender(settings).send(message("case_cancelled", reason="重复提交"))
    assert fake.requests == 0


def test_a_link_that_does_not_fit_is_refused_never_cut(aliyun):
    fake, settings = aliyun
    long_link = f"{PUBLIC}/s/{'x' * 40}"
    with pytest.raises(PermanentDeliveryError, match="never cut"):
        AliyunSmsSender(settings).send(message(customer_url=long_link))
    assert fake.requests == 0


# --- Tencent Cloud SMS ---------------------------------------------------------------


def test_tc3_signature_matches_the_official_sdk():
    """Known answer: the key derivation and signature of tencentcloud-sdk-python-common's
    Sign.sign_tc3, over the canonical request its client builds for a JSON POST."""
    payload = ('{"PhoneNumberSet":["+8613800138000"],"SmsSdkAppId":"1400006666",'
               '"SignName":"腾讯云","TemplateId":"1234567",'
               '"TemplateParamSet":["AS-7K2M9Q4TXB"],"SessionContext":"AS-7K2M9Q4TXB:3"}')
    header = tc3_authorization("AKIDtest", "testkey", host="sms.tencentcloudapi.com",
                               payload=payload.encode(), timestamp=1714552200)
    assert header == ("TC3-HMAC-SHA256 Credential=AKIDtest/2024-05-01/sms/tc3_request, "
                      "SignedHeaders=content-type;host, Signature="
                      "eff3f364aa7bf069263038fd1d72bb7f6608d20372a0ca33c83a37b5c967be11")


@pytest.fixture
def tencent(tmp_path):
    fake = FakeTencentSms("AKID-test", "tencent-key", "1400006666", "好店售后",
                          {"1000001": 2, "1000002": 3})
    with fake.serve() as server:
        settings = Settings().with_(
            public_url=PUBLIC, message_sender="tencent", tencent_secret_id="AKID-test",
            tencent_secret_key="tencent-key", tencent_sdk_app_id="1400006666",
            tencent_sign_name="好店售后", tencent_endpoint=server.url,
            sms_templates=write(tmp_path, "tencent.toml", TENCENT_TEMPLATES))
        yield fake, settings


def test_tencent_sends_the_registered_template_by_position(tencent):
    fake, settings = tencent
    TencentSmsSender(settings).send(message())
    (sent,) = fake.accepted
    assert sent["PhoneNumberSet"] == ["+8613800138000"]
    assert (sent["TemplateId"], sent["SignName"], sent["SmsSdkAppId"]) == \
        ("1000001", "好店售后", "1400006666")
    assert sent["TemplateParamSet"] == [CASE, TOKEN]
    assert sent["SessionContext"] == f"{CASE}:3"


def test_tencent_refuses_a_request_signed_with_another_key(tencent):
    fake, settings = tencent
    sender = TencentSmsSender(settings.with_(tencent_secret_key="not-the-key"))
    with pytest.raises(ProviderError, match=r"AuthFailure.SignatureFailure") as refused:
        sender.send(message())
    assert not isinstance(refused.value, PermanentDeliveryError)
    assert fake.accepted == []


def test_tencent_throttling_of_the_request_or_the_number_is_waited_out(tencent):
    fake, settings = tencent
    fake.script.extend(["throttle", "number_limit"])  # an Error, then a 200 refusing it
    sleeps = Sleeps()
    TencentSmsSender(settings, sleep=sleeps).send(message())
    assert sleeps == [0.5, 1.0] and fake.requests == 3 and len(fake.accepted) == 1


def test_tencent_throttling_that_lasts_is_an_ordinary_failure(tencent):
    fake, settings = tencent
    fake.script.extend(["throttle"] * 10)
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="RequestLimitExceeded") as failed:
        TencentSmsSender(settings, sleep=sleeps).send(message())
    assert not isinstance(failed.value, PermanentDeliveryError)
    assert len(sleeps) == 3 and fake.accepted == []


def test_tencent_refuses_an_invalid_number_in_its_send_status(tencent):
    fake, settings = tencent
    with pytest.raises(PermanentDeliveryError,
                       match=r"InvalidParameterValue.IncorrectPhoneNumber"):
        TencentSmsSender(settings).send(message(to="12345"))
    assert fake.requests == 1 and fake.accepted == []


def test_tencent_refuses_a_number_that_unsubscribed(tencent):
    fake, settings = tencent
    fake.blacklist.add("+8613800138000")
    with pytest.raises(PermanentDeliveryError, match="PhoneNumberInBlacklist"):
        TencentSmsSender(settings).send(message())
    assert fake.accepted == []


def test_tencent_answering_502_is_an_ordinary_failure(tencent):
    fake, settings = tencent
    fake.script.append("error500")
    with pytest.raises(ProviderError, match="502"):
        TencentSmsSender(settings).send(message())
    assert fake.requests == 1


def test_tencent_keeps_the_whole_sms_within_500_characters(tencent):
    fake, settings = tencent
    TencentSmsSender(settings).send(message("info_requested", question="很长的问题" * 200))
    case, question, token = fake.accepted[0]["TemplateParamSet"]
    assert (case, token) == (CASE, TOKEN)
    assert question.endswith("…") and len(case + question + token) == 500 - len("【好店售后】")


# --- WeChat --------------------------------------------------------------------------


@pytest.fixture
def wechat(tmp_path):
    fake = FakeWeChat("wx-test-app", "wechat-secret",
                      {"TPL-INFO": ["character_string1", "thing2", "name3"]})
    with fake.serve() as server:
        settings = Settings().with_(
            public_url=PUBLIC, message_sender="wechat", wechat_app_id="wx-test-app",
            wechat_app_secret="wechat-secret", wechat_endpoint=server.url,
            wechat_templates=write(tmp_path, "wechat.toml", WECHAT_TEMPLATES))
        yield fake, settings


def wechat_message(to: str = OPENID, question: str = "请补充发票照片") -> OutgoingMessage:
    return message("info_requested", to=to, medium="wechat", question=question)


def test_wechat_sends_a_subscription_notification_that_opens_the_status_link(wechat):
    fake, settings = wechat
    WeChatSender(settings).send(wechat_message(question="请补充商品背面的序列号照片以及包装盒上的条形码"))
    (sent,) = fake.accepted
    assert (sent["touser"], sent["template_id"], sent["page"]) == (OPENID, "TPL-INFO", LINK)
    data = {k: v["value"] for k, v in sent["data"].items()}
    assert data["character_string1"] == CASE and data["name3"] == "王芳"
    assert len(data["thing2"]) == 20 and data["thing2"].endswith("…")  # thing: 20


def test_wechat_keeps_its_token_across_sends(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings)
    for _ in range(3):
        sender.send(wechat_message())
    assert fake.token_fetches == 1 and len(fake.accepted) == 3


def test_wechat_fetches_a_token_again_when_it_runs_out(wechat):
    fake, settings = wechat
    now = [1000.0]
    sender = WeChatSender(settings, monotonic=lambda: now[0])
    sender.send(wechat_message())
    now[0] += 7200 - 300 - 1  # inside expires_in less the margin: kept
    sender.send(wechat_message())
    assert fake.token_fetches == 1
    now[0] += 2
    sender.send(wechat_message())
    assert fake.token_fetches == 2 and len(fake.accepted) == 3


def test_an_expired_token_is_refreshed_once_and_the_send_tried_again(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings)
    sender.send(wechat_message())
    fake.expire_token()  # 42001 for the token the sender holds
    before = fake.requests
    sender.send(wechat_message())
    assert fake.token_fetches == 2 and fake.forced == 0
    assert fake.requests - before == 2 and len(fake.accepted) == 2


def test_a_token_replaced_elsewhere_is_fetched_again(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings)
    sender.send(wechat_message())
    fake.token = "ACCESS-TOKEN-issued-to-another-process"  # ours now answers 40001
    sender.send(wechat_message())
    assert fake.token_fetches == 2 and fake.forced == 0 and len(fake.accepted) == 2


def test_a_rejected_token_handed_back_unchanged_is_forced_once(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings)
    sender.send(wechat_message())
    fake.revoked.add(fake.token)  # 40001, yet the normal stable_token call returns it
    sender.send(wechat_message())
    assert fake.token_fetches == 3 and fake.forced == 1 and len(fake.accepted) == 2


def test_a_token_rejected_even_fresh_is_an_ordinary_failure(wechat, monkeypatch):
    fake, settings = wechat
    sender = WeChatSender(settings)
    sender.send(wechat_message())
    original = fake._stable_token

    def revoking():
        answer = original()
        fake.revoked.add(fake.token)  # every token is refused as soon as it is given
        return answer

    fake.app.view_functions["token"] = revoking
    fake.revoked.add(fake.token)
    with pytest.raises(ProviderError, match="fresh access token"):
        sender.send(wechat_message())
    assert len(fake.accepted) == 1


def test_concurrent_sends_share_one_token_fetch(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings)
    start = threading.Barrier(8)
    errors = []

    def deliver():
        start.wait()
        try:
            sender.send(wechat_message())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and fake.token_fetches == 1 and len(fake.accepted) == 8


def test_concurrent_sends_with_an_expired_token_refresh_it_once(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings)
    sender.send(wechat_message())
    fake.expire_token()
    start = threading.Barrier(6)
    threads = [threading.Thread(target=lambda: (start.wait(), sender.send(wechat_message())))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert fake.token_fetches == 2 and len(fake.accepted) == 7


def test_wechat_refuses_users_who_unsubscribed_and_unknown_openids_for_good(wechat):
    fake, settings = wechat
    fake.refused.add(OTHER_OPENID)
    sender = WeChatSender(settings)
    with pytest.raises(PermanentDeliveryError, match="43101"):
        sender.send(wechat_message(to=OTHER_OPENID))
    with pytest.raises(PermanentDeliveryError, match="40003"):
        sender.send(wechat_message(to="not-an-openid"))
    assert fake.accepted == []


def test_wechat_busy_and_quota_are_waited_out_then_left_to_the_outbox(wechat):
    fake, settings = wechat
    fake.script.extend(["busy", "quota"])
    sleeps = Sleeps()
    WeChatSender(settings, sleep=sleeps).send(wechat_message())
    assert sleeps == [0.5, 1.0] and len(fake.accepted) == 1
    fake.script.extend(["busy"] * 10)
    with pytest.raises(ProviderError, match="throttled"):
        WeChatSender(settings, sleep=Sleeps()).send(wechat_message())
    assert len(fake.accepted) == 1


def test_wechat_with_a_wrong_app_secret_is_an_ordinary_failure_naming_the_setting(wechat):
    fake, settings = wechat
    sender = WeChatSender(settings.with_(wechat_app_secret="wrong"))
    with pytest.raises(ProviderError, match=r"40125.*AFTERSALES_WECHAT_APP_SECRET"):
        sender.send(wechat_message())
    assert fake.accepted == []


def test_wechat_answering_502_is_an_ordinary_failure(wechat):
    fake, settings = wechat
    fake.script.append("error500")
    with pytest.raises(ProviderError, match="502"):
        WeChatSender(settings).send(wechat_message())


def test_a_wechat_value_that_is_not_text_is_refused_rather_than_cut(wechat):
    fake, settings = wechat
    long_id = message("info_requested", to=OPENID, medium="wechat", question="q",
                      case_id="AS-" + "X" * 40)
    with pytest.raises(PermanentDeliveryError, match="not text that can be cut"):
        WeChatSender(settings).send(long_id)
    assert fake.requests == 0


# --- The signed webhook --------------------------------------------------------------


def test_the_webhook_signature_is_the_courier_webhook_scheme():
    body, stamp = b'{"to":"13800138000"}', "1714552200"
    expected = "sha256=" + hmac.new(b"s3cret", b"1714552200." + body,
                                    hashlib.sha256).hexdigest()
    assert webhook_signature(body, "s3cret", stamp) == expected
    assert courier_signature(body, "s3cret", stamp) == expected


@pytest.fixture
def gateway():
    fake = FakeWebhookGateway("hook-secret")
    with fake.serve() as server:
        yield fake, Settings().with_(message_sender="webhook",
                                     sms_webhook_url=f"{server.url}/messages",
                                     sms_webhook_secret="hook-secret")


def test_the_webhook_posts_the_message_signed(gateway):
    fake, settings = gateway
    WebhookSender(settings).send(message())
    (sent,) = fake.accepted
    assert fake.bad_signatures == 0
    assert sent == {"to": "13800138000", "template": "case_opened", "locale": "zh-CN",
                    "subject": f"工单 {CASE}", "body": f"正文\n{LINK}\n",
                    "params": message().params, "case_id": CASE,
                    "message_id": f"<{CASE}.3.abc@shop.example.com>"}


def test_the_webhook_signed_with_another_secret_is_refused_and_retried(gateway):
    fake, settings = gateway
    with pytest.raises(ProviderError, match="401") as failed:
        WebhookSender(settings.with_(sms_webhook_secret="other")).send(message())
    assert not isinstance(failed.value, PermanentDeliveryError)
    assert fake.bad_signatures == 1 and fake.accepted == []


@pytest.mark.parametrize("status", [410, 400])
def test_the_webhook_refusing_a_message_is_permanent(gateway, status):
    fake, settings = gateway
    fake.script.append(status)
    with pytest.raises(PermanentDeliveryError, match=str(status)):
        WebhookSender(settings).send(message())
    assert fake.requests == 1


def test_the_webhook_503_is_retried_by_the_outbox_or_waited_out_when_it_says(gateway):
    fake, settings = gateway
    fake.script.append(503)
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="503") as failed:
        WebhookSender(settings, sleep=sleeps).send(message())
    assert not isinstance(failed.value, PermanentDeliveryError) and sleeps == []
    fake.script.extend([(503, {"Retry-After": "1"}), (429, {"Retry-After": "2"})])
    WebhookSender(settings, sleep=sleeps).send(message())
    assert sleeps == [1.0, 2.0] and len(fake.accepted) == 1


def test_a_retry_after_too_long_to_wait_is_left_to_the_outbox(gateway):
    fake, settings = gateway
    fake.script.append((429, {"Retry-After": "600"}))
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="600 s"):
        WebhookSender(settings, sleep=sleeps).send(message())
    assert sleeps == [] and fake.requests == 1


def test_retry_after_takes_seconds_or_a_date():
    assert retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert retry_after(httpx.Headers({"Retry-After": "Wed, 01 May 2024 08:30:10 GMT"}),
                       now=1714552200.0) == 10.0
    assert retry_after(httpx.Headers({})) is None


# --- Template mappings ---------------------------------------------------------------


def mapping(tmp_path, text: str, rules=ALIYUN_RULES):
    return load_templates(write(tmp_path, "m.toml", text), "AFTERSALES_SMS_TEMPLATES", rules,
                          public_url=PUBLIC, default_locale="zh-CN")


@pytest.mark.parametrize(("text", "rules", "says"), [
    ('[case_open]\ntemplate = "SMS_1"', ALIYUN_RULES, "no notification of that name"),
    ('[case_opened]\ntemplate = ""', ALIYUN_RULES, "template must be"),
    ('[case_opened]\ntemplate = { en = "SMS_1" }', ALIYUN_RULES, "needs zh-CN"),
    ('[case_opened]\ntemplate = "SMS_1"\nparams = [{ name = "q", from = "question" }]',
     ALIYUN_RULES, "from must be one of case_id, customer_url"),
    ('[case_opened]\ntemplate = "SMS_1"\nparams = [{ from = "case_id" }]', ALIYUN_RULES,
     "need a name"),
    ('[case_opened]\ntemplate = "1"\nparams = [{ name = "a", from = "case_id" }]',
     TENCENT_RULES, "go by position"),
    ('[case_opened]\ntemplate = "SMS_1"\nparams = [{ name = "u", from = "customer_url", '
     'link = true }]', ALIYUN_RULES, "a link needs prefix"),
    ('[case_opened]\ntemplate = "SMS_1"\nparams = [{ name = "u", from = "customer_url", '
     'link = true, prefix = "https://elsewhere.example/s/" }]', ALIYUN_RULES,
     "a link needs prefix"),
    ('[case_opened]\ntemplate = "SMS_1"\nparams = [{ name = "c", from = "case_id", '
     'max = 0 }]', ALIYUN_RULES, "max must be"),
    ('[case_opened]\ntemplate = "T"\nparams = [{ name = "foo", from = "case_id" }]',
     WECHAT_RULES, "not a subscription template field"),
    ('[case_opened]\ntemplate = "T"\nparams = [{ name = "thing1", from = "customer_url", '
     f'link = true, prefix = "{PUBLIC}/s/" }}]', WECHAT_RULES, "set page instead"),
    ('[case_opened]\ntemplate = "SMS_1"\npage = "customer_url"', ALIYUN_RULES,
     "WeChat only"),
    ('[case_opened]\ntemplate = "SMS_1"\ncolour = "red"', ALIYUN_RULES, "unknown keys"),
    ("[case_opened\n", ALIYUN_RULES, "not TOML"),
])
def test_a_mapping_that_cannot_work_is_refused_at_start_saying_why(tmp_path, text, rules,
                                                                   says):
    with pytest.raises(TemplateConfigError, match=says) as refused:
        mapping(tmp_path, text, rules)
    assert "AFTERSALES_SMS_TEMPLATES=" in str(refused.value)


def test_a_missing_mapping_file_names_its_setting(tmp_path, aliyun):
    _, settings = aliyun
    with pytest.raises(TemplateConfigError, match=r"AFTERSALES_SMS_TEMPLATES=.*nowhere"):
        AliyunSmsSender(settings.with_(sms_templates=str(tmp_path / "nowhere.toml")))


@pytest.mark.parametrize(("example", "rules"), [
    ("aliyun-sms-templates.toml", ALIYUN_RULES),
    ("tencent-sms-templates.toml", TENCENT_RULES),
    ("wechat-templates.toml", WECHAT_RULES),
])
def test_the_shipped_example_mappings_load(example, rules):
    templates = load_templates(str(ROOT / "docs" / "providers" / example), "example", rules,
                               public_url=PUBLIC, default_locale="zh-CN")
    assert {"case_opened", "info_requested", "rating_request",
            "case_cancelled"} <= set(templates)


def test_clip_keeps_text_on_one_line_within_the_limit():
    assert clip("a\nb  c", 10) == "a b c"
    assert clip("一二三四五六", 6) == "一二三四五六"
    assert clip("一二三四五六七", 6) == "一二三四五…"
    assert clip("long text", None) == "long text"


def test_numbers_are_written_as_the_providers_want():
    assert e164("13800138000") == "+8613800138000"
    assert e164("+86 138-0013-8000") == "+8613800138000"
    assert e164("0085291234567") == "+85291234567"


# --- Choosing the providers ----------------------------------------------------------


def test_the_sender_is_chosen_by_name_or_class():
    settings = Settings()
    assert settings.message_sender == "log"
    assert isinstance(load_sender("log", settings), LoggingSender)
    assert isinstance(load_sender("activities.senders:LoggingSender", settings),
                      LoggingSender)
    with pytest.raises(ValueError, match="expected one of log, aliyun, tencent, wechat"):
        load_sender("sms", settings)


@pytest.mark.parametrize(("name", "variable"), [
    ("aliyun", "AFTERSALES_ALIYUN_ACCESS_KEY_ID"),
    ("tencent", "AFTERSALES_TENCENT_SECRET_ID"),
    ("wechat", "AFTERSALES_WECHAT_APP_ID"),
    ("webhook", "AFTERSALES_SMS_WEBHOOK_URL"),
])
def test_a_provider_without_its_settings_refuses_to_start_naming_them(name, variable):
    with pytest.raises(ValueError, match=variable):
        senders_from_settings(Settings().with_(message_sender=name))


def test_wechat_gets_its_own_medium_beside_the_sms_provider(aliyun, wechat):
    _, sms = aliyun
    _, wx = wechat
    alone = senders_from_settings(wx)
    assert isinstance(alone["message"], LoggingSender)
    assert isinstance(alone["wechat"], WeChatSender)
    both = senders_from_settings(sms.with_(
        wechat_app_id=wx.wechat_app_id, wechat_app_secret=wx.wechat_app_secret,
        wechat_templates=wx.wechat_templates, wechat_endpoint=wx.wechat_endpoint))
    assert isinstance(both["message"], AliyunSmsSender)
    assert isinstance(both["wechat"], WeChatSender)
    assert "wechat" not in senders_from_settings(Settings())
