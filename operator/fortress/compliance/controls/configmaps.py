"""ConfigMap controls: credentials, personal data and cardholder data kept in plain configuration."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from fortress.compliance.context import Context
from fortress.compliance.controls._base import Where, cis, control, direct, nsa
from fortress.compliance.model import PASS, Control, Obj, Result, Severity, fail

AREA = "configmaps"
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW
MAX_VALUE = 65536  # characters of each value examined


def _items(obj: Obj) -> Iterator[tuple[str, str]]:
    data = obj.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key), str(value)[:MAX_VALUE]


def _keys(pattern: re.Pattern[str], what: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        keys = [k for k, _ in _items(obj) if pattern.search(k)] + [
            str(k) for k in (obj.get("binaryData") or {}) if pattern.search(str(k))
        ]
        return fail(f"key {keys[0]} looks like {what}", f"/data/{keys[0]}") if keys else PASS

    return check


def _values(test: Callable[[str], bool], what: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        for key, value in _items(obj):
            if test(value):
                return fail(f"the value of {key} contains {what}", f"/data/{key}")
        return PASS

    return check


CREDENTIAL_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[-_.]?key|private[-_.]?key|credential|client[-_.]?secret|"
    r"access[-_.]?key)$|^(pass(word)?|secret|token)",
    re.I,
)
PII_KEY = re.compile(
    r"(e[-_.]?mail[-_.]?(address|list)|ssn|social[-_.]?security|passport|date[-_.]?of[-_.]?birth|\bdob\b|"
    r"phone[-_.]?numbers?|home[-_.]?address|national[-_.]?id|tax[-_.]?id|iban|customers?[-_.]?list)",
    re.I,
)
SPECIAL_KEY = re.compile(
    r"(health|medical|diagnos|religio|ethnic|sexual|biometric|political|trade[-_.]?union)", re.I
)
CARD_KEY = re.compile(r"(card[-_.]?number|\bpan\b|credit[-_.]?card|cvv|cvc)", re.I)
PRIVATE_KEY = re.compile(r"-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----")
AWS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
DSN_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s/@]+@[^\s/]+", re.I)
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
CARD_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){13,19}(?![0-9])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _found(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: pattern.search(text) is not None


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def has_card_number(text: str) -> bool:
    for match in CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn(digits) and len(set(digits)) > 2:
            return True
    return False


def many_emails(text: str) -> bool:
    return len(set(EMAIL.findall(text))) >= 5


_CM: Where = {"kinds": ("ConfigMap",), "area": AREA}

CONTROLS: tuple[Control, ...] = (
    control(
        "CM-CREDENTIAL-KEYS",
        "ConfigMaps do not hold credential keys",
        severity=H,
        check=_keys(CREDENTIAL_KEY, "a credential"),
        profiles=("secrets",),
        source=cis("5.4.1"),
        description="No data or binaryData key is named like a password, token, secret or API key.",
        rationale="ConfigMaps are readable by anyone who can read configuration and are not encrypted "
        "at rest.",
        remediation="Move the value to a Secret.",
        **_CM,
    ),
    control(
        "CM-PRIVATE-KEYS",
        "ConfigMaps hold no private keys",
        severity=C,
        check=_values(_found(PRIVATE_KEY), "a PEM private key"),
        profiles=("secrets",),
        source=cis("5.4.1"),
        description="No value contains a PEM private key block.",
        rationale="A private key in plain configuration is a key in everyone's hands.",
        remediation="Move the key to a Secret (type kubernetes.io/tls).",
        **_CM,
    ),
    control(
        "CM-CLOUD-KEYS",
        "ConfigMaps hold no cloud access keys",
        severity=C,
        check=_values(_found(AWS_KEY), "an AWS access key id"),
        profiles=("secrets",),
        source=cis("5.4.1"),
        description="No value contains an AWS access key id (AKIA/ASIA...).",
        rationale="Cloud keys reach far beyond the cluster.",
        remediation="Use workload identity or a Secret.",
        **_CM,
    ),
    control(
        "CM-DSN-PASSWORDS",
        "ConfigMaps hold no URLs with passwords",
        severity=H,
        check=_values(_found(DSN_PASSWORD), "a URL with a password"),
        profiles=("secrets", "authentication"),
        source=cis("5.4.1"),
        description="No value contains scheme://user:password@host.",
        rationale="Database and broker URLs with passwords are credentials.",
        remediation="Keep the URL in a Secret.",
        **_CM,
    ),
    control(
        "CM-JWT",
        "ConfigMaps hold no bearer tokens",
        severity=H,
        check=_values(_found(JWT), "a JSON Web Token"),
        profiles=("secrets", "authentication"),
        source=cis("5.4.1"),
        description="No value contains a JSON Web Token.",
        rationale="A bearer token is a credential to whoever reads it.",
        remediation="Move the token to a Secret.",
        **_CM,
    ),
    control(
        "CM-PII-KEYS",
        "ConfigMaps hold no personal data keys",
        severity=M,
        check=_keys(PII_KEY, "personal data"),
        profiles=("personal-data",),
        source=direct("GDPR Art. 32(1)(a), 25(1)"),
        description="No key is named like e-mail lists, national ids, dates of birth or phone numbers.",
        rationale="Personal data must be protected by design; ConfigMaps are neither encrypted nor access "
        "controlled like Secrets.",
        remediation="Keep personal data in a database with access control.",
        **_CM,
    ),
    control(
        "CM-SPECIAL-CATEGORY-KEYS",
        "ConfigMaps hold no special-category data keys",
        severity=H,
        check=_keys(SPECIAL_KEY, "special-category personal data"),
        profiles=("personal-data",),
        source=direct("GDPR Art. 9(1)"),
        description="No key is named like health, religion, ethnicity, sexual orientation or biometric data.",
        rationale="Special categories of personal data need the strongest protection.",
        remediation="Remove the data from configuration.",
        **_CM,
    ),
    control(
        "CM-EMAIL-LISTS",
        "ConfigMaps hold no lists of e-mail addresses",
        severity=L,
        check=_values(many_emails, "five or more e-mail addresses"),
        profiles=("personal-data",),
        source=direct("GDPR Art. 5(1)(c)"),
        description="No value contains five or more distinct e-mail addresses.",
        rationale="Lists of people's addresses are personal data and should not live in configuration.",
        remediation="Reference a group alias instead.",
        **_CM,
    ),
    control(
        "CM-CARD-KEYS",
        "ConfigMaps hold no cardholder data keys",
        severity=H,
        check=_keys(CARD_KEY, "cardholder data"),
        profiles=("personal-data",),
        source=direct("PCI DSS 3.3.1"),
        description="No key is named like a card number, PAN or CVV.",
        rationale="Cardholder data must be unreadable wherever it is stored.",
        remediation="Remove the data; tokenise card numbers.",
        **_CM,
    ),
    control(
        "CM-CARD-NUMBERS",
        "ConfigMaps hold no card numbers",
        severity=C,
        check=_values(has_card_number, "a Luhn-valid card number"),
        profiles=("personal-data",),
        source=nsa("Authentication and authorization: secrets"),
        description="No value contains a 13-19 digit Luhn-valid number starting with 3-6.",
        rationale="A primary account number in plain configuration breaks PCI DSS 3.5.1.",
        remediation="Remove the number.",
        **_CM,
    ),
)
