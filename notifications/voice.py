"""Outbound voice calls through Twilio Voice (the twilio SDK's async client), with TwiML built by
``twilio.twiml.voice_response``.

Used by the visitors ladder ("press 1 to approve, 2 to deny"): the call carries its TwiML inline
(``Twiml``), and ``<Gather numDigits=1 action=...>`` makes Twilio POST the pressed digit to our
signed callback URL, which verifies ``X-Twilio-Signature`` like every other Twilio webhook.
With ``TWILIO_BASE_URL`` set the same SDK talks to the local fake.
"""

from __future__ import annotations

from typing import Any

import msgspec
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client as TwilioClient
from twilio.twiml.voice_response import VoiceResponse

from app.config import Settings
from notifications.fakes.sdk_wiring import twilio_client_for_fake

DEFAULT_VOICE = "Polly.Aditi"  # an Indian English voice; Twilio falls back if unavailable
DEFAULT_LANGUAGE = "en-IN"


class CallOutcome(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    sid: str | None = None
    error_code: str | None = None

    @property
    def placed(self) -> bool:
        return self.sid is not None


def gather_twiml(prompt: str, action_url: str, *, timeout_seconds: int = 8, repeats: int = 2) -> str:
    """Say ``prompt`` and collect one digit, POSTed to ``action_url``; repeat, then say goodbye."""
    response = VoiceResponse()
    for _ in range(max(1, repeats)):
        gather = response.gather(input="dtmf", num_digits=1, action=action_url, method="POST", timeout=timeout_seconds)
        gather.say(prompt, voice=DEFAULT_VOICE, language=DEFAULT_LANGUAGE)
    response.say("We did not get an answer. Goodbye.", voice=DEFAULT_VOICE, language=DEFAULT_LANGUAGE)
    return str(response)


def say_twiml(text: str) -> str:
    response = VoiceResponse()
    response.say(text, voice=DEFAULT_VOICE, language=DEFAULT_LANGUAGE)
    response.hangup()
    return str(response)


class VoiceCaller:
    """Places calls; one instance per process (it holds the SDK's HTTP session)."""

    def __init__(self, client: TwilioClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceCaller:
        """Must be called inside a running event loop (the async Twilio client needs one)."""
        if settings.twilio_base_url:
            client = twilio_client_for_fake(
                settings.twilio_base_url, settings.twilio_account_sid, settings.twilio_auth_token
            )
        else:
            client = TwilioClient(
                settings.twilio_account_sid, settings.twilio_auth_token, http_client=AsyncTwilioHttpClient()
            )
        return cls(client)

    async def call(
        self, *, to: str, from_: str, twiml: str, status_callback: str | None = None, timeout_seconds: int = 30
    ) -> CallOutcome:
        """Place one call; never raises for a provider or network failure (the outcome says so)."""
        params: dict[str, Any] = {"to": to, "from_": from_, "twiml": twiml, "timeout": timeout_seconds}
        if status_callback:
            params["status_callback"] = status_callback
            params["status_callback_event"] = ["completed"]
        try:
            created = await self._client.calls.create_async(**params)
        except TwilioRestException as exc:
            return CallOutcome(to=to, error_code=str(exc.code or exc.status))
        except Exception as exc:  # network trouble
            return CallOutcome(to=to, error_code=type(exc).__name__)
        return CallOutcome(to=to, sid=created.sid)

    async def aclose(self) -> None:
        http_client: Any = self._client.http_client
        close = getattr(http_client, "close", None)
        if close is not None:
            await close()
