"""Local stand-ins for the message providers, each on 127.0.0.1: Alibaba Cloud SMS,
Tencent Cloud SMS, the WeChat Official Account API and a retailer's webhook gateway.

Each checks a request the way its provider documents it, recomputing the signature from
the raw request on its own (never with activities/providers.py, so a mistake there
shows), refuses a bad one with the provider's own error shape (Aliyun
`SignatureDoesNotMatch`, Tencent `AuthFailure.SignatureFailure`, WeChat errcode 40001 for
a token it did not issue), holds values to the provider's rules, and answers with its
success and error shapes. `script` queues answers to give next (throttling, a 500, ...);
`accepted` keeps what each one accepted. Tests start them with `serve()`; `aftersales
dev` could run them the same way. Never imported by production code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Flask, request
from werkzeug.serving import make_server


class FakeServer:
    """A WSGI app served on a free port of 127.0.0.1 by a thread, until `stop()`."""

    def __init__(self, app: Flask) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="fake-provider")
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Fake:
    """What every fake has: a lock, the requests it saw, what it accepted, a script."""

    def __init__(self, name: str) -> None:
        self.app = Flask(name)
        self.lock = threading.Lock()
        self.requests = 0
        self.accepted: list[dict] = []
        self.script: deque[Any] = deque()  # answers to give next, one per request

    def serve(self) -> FakeServer:
        return FakeServer(self.app)

    def _next(self) -> Any:
        with self.lock:
            self.requests += 1
            return self.script.popleft() if self.script else None


# --- Alibaba Cloud SMS: POST / with form parameters, signature version 1.0 -----------


def _pop_encode(text: str) -> str:
    # RFC 3986: Python's quote keeps only A-Z a-z 0-9 _ . - ~ when nothing else is safe.
    return quote(text.encode("utf-8"), safe="")


class FakeAliyunSms(Fake):
    """dysmsapi's SendSms. `templates`: TemplateCode -> the variables it was registered
    with; each value holds up to 35 characters and may not be a URL."""

    def __init__(self, access_key_id: str, secret: str, sign_name: str,
                 templates: dict[str, list[str]]) -> None:
        super().__init__("fake-aliyun-sms")
        self.access_key_id, self.secret, self.sign_name = access_key_id, secret, sign_name
        self.templates = templates
        self.nonces: set[str] = set()
        self.app.add_url_rule("/", "send_sms", self._send_sms, methods=["POST"])

    def _error(self, status: int, code: str, message: str):
        return {"RequestId": str(uuid.uuid4()).upper(), "HostId": "dysmsapi.aliyuncs.com",
                "Code": code, "Message": message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}"}, status

    def _send_sms(self):
        scripted = self._next()
        form = request.form.to_dict()
        given = form.pop("Signature", "")
        if form.get("AccessKeyId") != self.access_key_id:
            return self._error(404, "InvalidAccessKeyId.NotFound",
                               "Specified access key is not found.")
        canonical = "&".join(f"{_pop_encode(k)}={_pop_encode(v)}"
                             for k, v in sorted(form.items()))
        string_to_sign = "POST&%2F&" + _pop_encode(canonical)
        expected = base64.b64encode(hmac.new((self.secret + "&").encode(),
                                             string_to_sign.encode(), hashlib.sha1).digest())
        if not hmac.compare_digest(given.encode(), expected):
            return self._error(400, "SignatureDoesNotMatch",
                               "Specified signature is not matched with our calculation. "
                               f"server string to sign is:{string_to_sign}")
        nonce = form.get("SignatureNonce", "")
        with self.lock:
            if not nonce or nonce in self.nonces:
                return self._error(400, "SignatureNonceUsed",
                                   "Specified signature nonce was used already.")
            self.nonces.add(nonce)
        try:
            stamp = datetime.strptime(form.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return self._error(400, "InvalidTimeStamp.Format",
                               "Specified time stamp does not matches the specified format.")
        if abs(time.time() - stamp.replace(tzinfo=UTC).timestamp()) > 900:
            return self._error(400, "InvalidTimeStamp.Expired",
                               "Specified time stamp or date header is expired.")
        if (form.get("Action"), form.get("Version")) != ("SendSms", "2017-05-25") or \
                (form.get("SignatureMethod"), form.get("SignatureVersion")) != \
                ("HMAC-SHA1", "1.0") or form.get("Format") != "JSON":
            return self._error(400, "InvalidParameter", "Action, Version, Format or "
                               "SignatureMethod is not the one this API takes.")
        if scripted == "error500":
            return self._error(500, "InternalError", "The request processing has failed "
                               "due to some unknown error, exception or failure.")
        if scripted == "throttle":
            return self._error(200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
        return self._business(form)

    def _business(self, form: dict[str, str]):
        if not re.fullmatch(r"1\d{10}|[1-9]\d{7,14}", form.get("PhoneNumbers", "")):
            return self._error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if form.get("SignName") != self.sign_name:
            return self._error(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(form.get("TemplateCode", ""))
        if variables is None:
            return self._error(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            values = json.loads(form.get("TemplateParam", "{}"))
        except ValueError:
            return self._error(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            return self._error(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if set(values) != set(variables):
            return self._error(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any("://" in v or v.startswith("www.") for v in values.values()):
            return self._error(200, "isv.PARAM_NOT_SUPPORT_URL", "不支持URL为变量")
        if any(len(v) > 35 or "\n" in v for v in values.values()):
            return self._error(200, "isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        with self.lock:
            self.accepted.append({**form, "TemplateParam": values})
        return {"Message": "OK", "RequestId": str(uuid.uuid4()).upper(), "Code": "OK",
                "BizId": f"{int(time.time() * 1000)}^0"}, 200


# --- Tencent Cloud SMS: POST / with a JSON body, TC3-HMAC-SHA256 ---------------------

AUTHORIZATION = re.compile(r"TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d\d-\d\d)"
                           r"/(?P<service>[a-z]+)/tc3_request, SignedHeaders=(?P<headers>"
                           r"[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})")


def _hmac256(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


class FakeTencentSms(Fake):
    """SendSms of API 3.0. `templates`: TemplateId -> how many parameters it takes;
    `blacklist`: numbers that unsubscribed (FailedOperation.PhoneNumberInBlacklist)."""

    def __init__(self, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str,
                 templates: dict[str, int]) -> None:
        super().__init__("fake-tencent-sms")
        self.secret_id, self.secret_key = secret_id, secret_key
        self.sdk_app_id, self.sign_name, self.templates = sdk_app_id, sign_name, templates
        self.blacklist: set[str] = set()
        self.app.add_url_rule("/", "send_sms", self._send_sms, methods=["POST"])

    @staticmethod
    def _error(code: str, message: str, status: int = 200):
        return {"Response": {"Error": {"Code": code, "Message": message},
                             "RequestId": str(uuid.uuid4())}}, status

    def _authorised(self) -> tuple[str, str] | None:
        """None if the request is signed right, else the error's code and message."""
        found = AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if not found:
            return "AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256."
        if found["id"] != self.secret_id:
            return "AuthFailure.SecretIdNotFound", "The SecretId is not found."
        stamp = request.headers.get("X-TC-Timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return "AuthFailure.SignatureExpire", "Signature expired, timestamp is too far."
        date = datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%d")
        names = found["headers"].split(";")
        if "content-type" not in names or "host" not in names or found["date"] != date:
            return ("AuthFailure.SignatureFailure",
                    "The provided credentials could not be validated.")
        # Header names and values in lower case, trimmed, each line ending in \n.
        headers = "".join(f"{n}:{request.headers.get(n, '').strip().lower()}\n" for n in names)
        canonical = (f"{request.method}\n{request.path}\n{request.query_string.decode()}\n"
                     f"{headers}\n{found['headers']}\n"
                     f"{hashlib.sha256(request.get_data()).hexdigest()}")
        scope = f"{date}/{found['service']}/tc3_request"
        string_to_sign = (f"TC3-HMAC-SHA256\n{stamp}\n{scope}\n"
                          f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        key = _hmac256(_hmac256(_hmac256(("TC3" + self.secret_key).encode(), date),
                                found["service"]), "tc3_request")
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if found["service"] != "sms" or not hmac.compare_digest(expected, found["signature"]):
            return ("AuthFailure.SignatureFailure", "The provided credentials could not be "
                    "validated. Please check your signature is correct.")
        return None

    def _send_sms(self):
        scripted = self._next()
        refused = self._authorised()
        if refused:
            return self._error(*refused)
        if request.headers.get("X-TC-Action") != "SendSms":
            return self._error("InvalidAction", "The action is not found.")
        if request.headers.get("X-TC-Version") != "2021-01-11":
            return self._error("NoSuchVersion", "The API version does not exist.")
        if scripted == "error500":
            return "upstream connect error", 502
        if scripted == "throttle":
            return self._error("RequestLimitExceeded", "Your current request times equals "
                               "to `20` in a second, which exceeds the frequency limit.")
        body = json.loads(request.get_data() or b"{}")
        if body.get("SmsSdkAppId") != self.sdk_app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist",
                               "SdkAppId does not exist.")
        if body.get("SignName") != self.sign_name:
            return self._error("FailedOperation.SignatureIncorrectOrUnapproved",
                               "The signature is not approved or is incorrect.")
        count = self.templates.get(body.get("TemplateId", ""))
        params = body.get("TemplateParamSet") or []
        if count is None:
            return self._error("FailedOperation.TemplateIncorrectOrUnapproved",
                               "The template is not approved or is incorrect.")
        if len(params) != count or not all(isinstance(p, str) for p in params):
            return self._error("InvalidParameterValue.TemplateParameterFormatError",
                               "The template parameters do not match the template.")
        if any(re.search(r"://|www\.", p) for p in params):
            return self._error("InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
                               "URLs are not allowed in template parameters.")
        if sum(len(p) for p in params) + len(self.sign_name) + 2 > 500:
            return self._error("InvalidParameterValue.ContentLengthLimit",
                               "The SMS content is too long.")
        statuses = [self._status(number, body, scripted)
                    for number in body.get("PhoneNumberSet") or []]
        return {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}, 200

    def _status(self, number: str, body: dict, scripted: Any) -> dict:
        status = {"SerialNo": str(uuid.uuid4()), "PhoneNumber": number, "Fee": 1,
                  "SessionContext": body.get("SessionContext", ""), "IsoCode": "CN",
                  "Code": "Ok", "Message": "send success"}
        if not re.fullmatch(r"\+[1-9]\d{7,14}", number):
            return {**status, "Fee": 0, "IsoCode": "", "Code":
                    "InvalidParameterValue.IncorrectPhoneNumber",
                    "Message": "invalid mobile number"}
        if number in self.blacklist:
            return {**status, "Fee": 0, "Code": "FailedOperation.PhoneNumberInBlacklist",
                    "Message": "The mobile number is in the blocklist."}
        if scripted == "number_limit":
            return {**status, "Fee": 0, "Code": "LimitExceeded.PhoneNumberThirtySecondLimit",
                    "Message": "the number of SMS messages sent to a single number in "
                               "30 seconds exceeds the limit"}
        with self.lock:
            self.accepted.append(body)
        return status


# --- WeChat Official Account: stable_token and subscribe/bizsend --------------------

# The documented field types of a subscription template and the characters they hold.
FIELD_RULES = {
    "thing": (20, None), "character_string": (32, r"[\x21-\x7e]+"), "number": (32, r"[\d.]+"),
    "letter": (32, r"[A-Za-z]+"), "symbol": (5, None), "phone_number": (17, r"[\d+\-]+"),
    "car_number": (8, None), "phrase": (5, None), "name": (20, None),
}


class FakeWeChat(Fake):
    """The Official Account API. `templates`: template_id -> its field names;
    `refused`: openids that refused or cancelled the subscription (43101)."""

    def __init__(self, app_id: str, app_secret: str, templates: dict[str, list[str]],
                 expires_in: int = 7200) -> None:
        super().__init__("fake-wechat")
        self.app_id, self.app_secret, self.templates = app_id, app_secret, templates
        self.expires_in = expires_in
        self.refused: set[str] = set()
        self.token = ""
        self.expired: set[str] = set()  # tokens issued that ran out (42001)
        # Tokens the API no longer takes (40001) though stable_token still hands them
        # out in its normal mode: only force_refresh replaces them.
        self.revoked: set[str] = set()
        self.token_fetches = 0
        self.forced = 0
        self.app.add_url_rule("/cgi-bin/stable_token", "token", self._stable_token,
                              methods=["POST"])
        self.app.add_url_rule("/cgi-bin/message/subscribe/bizsend", "bizsend",
                              self._bizsend, methods=["POST"])

    def expire_token(self) -> None:
        """The token in use runs out now, as if WeChat had renewed it."""
        with self.lock:
            self.expired.add(self.token)

    def _stable_token(self):
        body = request.get_json(silent=True) or {}
        with self.lock:
            self.token_fetches += 1
            if body.get("grant_type") != "client_credential":
                return {"errcode": 40002, "errmsg": "invalid grant_type"}
            if body.get("appid") != self.app_id:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if body.get("secret") != self.app_secret:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            force = body.get("force_refresh") is True
            self.forced += force
            if force or not self.token or self.token in self.expired:
                if self.token:
                    self.expired.add(self.token)
                self.token = f"ACCESS-TOKEN-{uuid.uuid4().hex}"
            return {"access_token": self.token, "expires_in": self.expires_in}

    def _bizsend(self):
        scripted = self._next()
        token = request.args.get("access_token", "")
        with self.lock:
            if token in self.expired:
                return {"errcode": 42001, "errmsg": "access_token expired"}
            if token != self.token or token in self.revoked:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is "
                        "invalid or not latest"}
        if scripted == "error500":
            return "<html>502 Bad Gateway</html>", 502
        if scripted in ("busy", "quota"):
            return ({"errcode": -1, "errmsg": "system error"} if scripted == "busy" else
                    {"errcode": 45009, "errmsg": "reach max api daily quota limit"})
        body = request.get_json(silent=True) or {}
        openid = body.get("touser", "")
        if not re.fullmatch(r"o[\w-]{27}", openid):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        if openid in self.refused:
            return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
        fields = self.templates.get(body.get("template_id", ""))
        if fields is None:
            return {"errcode": 40037, "errmsg": "invalid template_id"}
        data = body.get("data") or {}
        for name in fields:
            value = (data.get(name) or {}).get("value")
            wrong = self._wrong(name, value)
            if wrong:
                return {"errcode": 47003, "errmsg": f"argument invalid! data.{name}.value "
                                                    f"{wrong}"}
        with self.lock:
            self.accepted.append(body)
            return {"errcode": 0, "errmsg": "ok", "msgid": len(self.accepted)}

    @staticmethod
    def _wrong(name: str, value: Any) -> str | None:
        kind = name.rstrip("0123456789")
        if not isinstance(value, str) or not value:
            return "is empty"
        most, pattern = FIELD_RULES.get(kind, (None, None))
        if kind == "name" and not value.isascii():
            most = 10
        if most is not None and len(value) > most:
            return f"exceeds limit {most}"
        if pattern and not re.fullmatch(pattern, value):
            return "invalid"
        if "\n" in value:
            return "invalid"
        return None


# --- A webhook gateway ---------------------------------------------------------------


class FakeWebhookGateway(Fake):
    """A retailer's gateway: checks `X-Aftersales-Signature` (HMAC-SHA256 of
    `<X-Aftersales-Timestamp>.<raw body>`) and answers 202, or what `script` says: a
    status, or (status, headers)."""

    def __init__(self, secret: str) -> None:
        super().__init__("fake-webhook-gateway")
        self.secret = secret
        self.bad_signatures = 0
        self.app.add_url_rule("/messages", "messages", self._messages, methods=["POST"])

    def _messages(self):
        scripted = self._next()
        raw = request.get_data()
        stamp = request.headers.get("X-Aftersales-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), stamp.encode() + b"." + raw,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Aftersales-Signature", ""),
                                   expected) or not stamp.isdigit() \
                or abs(time.time() - int(stamp)) > 300:
            with self.lock:
                self.bad_signatures += 1
            return {"error": "bad signature"}, 401
        if scripted is not None:
            status, headers = scripted if isinstance(scripted, tuple) else (scripted, {})
            return {"error": f"scripted {status}"}, status, headers
        with self.lock:
            self.accepted.append(json.loads(raw))
        return {"accepted": True}, 202
