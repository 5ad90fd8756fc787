"""Builds the channel adapters from settings: real providers, or the same SDKs pointed elsewhere.

With TWILIO_BASE_URL / FCM_BASE_URL set (local fakes in dev and tests), the real SDKs are
redirected at the transport; nothing of ours is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

import firebase_admin
from firebase_admin import credentials
from redis.asyncio import Redis
from twilio.rest import Client as TwilioClient

from app.config import Settings
from app.people.directory import cipher_for
from notifications.categories import Channel
from notifications.channels.base import ChannelAdapter
from notifications.channels.email import EmailAdapter
from notifications.channels.in_app import FeedAnnouncer, InAppAdapter
from notifications.channels.push import PushAdapter
from notifications.channels.twilio_messaging import HeaderKeepingTwilioHttpClient, TwilioMessagingAdapter
from notifications.fakes.sdk_wiring import aclose_firebase_app, firebase_app_for_fake, twilio_client_for_fake
from notifications.ratelimit import RateLimiter, channel_key

FIREBASE_APP_NAME = "opshub"
WHATSAPP_SESSION_SECONDS = 24 * 3600
STATUS_CALLBACK_PATH = "/api/webhooks/twilio/status"


def whatsapp_session_key(settings: Settings, phone_e164: str) -> str:
    index = cipher_for(settings).blind_index("mobile", phone_e164)
    return f"{settings.redis_prefix}notify:wa-session:{index}"


async def open_whatsapp_session(redis: Redis, settings: Settings, phone_e164: str) -> None:
    """The person wrote to us on WhatsApp: free-form replies are allowed for 24 hours."""
    await redis.set(whatsapp_session_key(settings, phone_e164), b"1", ex=WHATSAPP_SESSION_SECONDS)


class Providers:
    """The adapters of every channel, and the per-channel shared rate limits."""

    def __init__(
        self,
        adapters: Mapping[Channel, ChannelAdapter],
        limits: Mapping[Channel, RateLimiter],
        firebase_app: firebase_admin.App | None,
    ) -> None:
        self.adapters = dict(adapters)
        self.limits = dict(limits)
        self._firebase_app = firebase_app

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self._firebase_app is not None:
            await aclose_firebase_app(self._firebase_app)


def _twilio_client(settings: Settings) -> TwilioClient:
    if settings.twilio_base_url:
        return twilio_client_for_fake(settings.twilio_base_url, settings.twilio_account_sid, settings.twilio_auth_token)
    http_client = HeaderKeepingTwilioHttpClient()
    return TwilioClient(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)


def _firebase_app(settings: Settings) -> firebase_admin.App:
    if settings.fcm_base_url:
        return firebase_app_for_fake(
            settings.fcm_base_url,
            settings.fcm_project_id,
            access_token=settings.fcm_access_token or "local-fcm-token",
            name=f"{FIREBASE_APP_NAME}:{settings.fcm_base_url}",
        )
    try:
        return firebase_admin.get_app(FIREBASE_APP_NAME)
    except ValueError:
        credential = (
            credentials.Certificate(settings.fcm_credentials_file)
            if settings.fcm_credentials_file
            else credentials.ApplicationDefault()
        )
        return firebase_admin.initialize_app(credential, {"projectId": settings.fcm_project_id}, name=FIREBASE_APP_NAME)


def configured_rates(settings: Settings) -> dict[Channel, float]:
    """Sends per second per channel from the environment (0: no rate of our own)."""
    return {
        Channel.SMS: settings.notify_rate_sms,
        Channel.WHATSAPP: settings.notify_rate_whatsapp,
        Channel.PUSH: settings.notify_rate_push,
        Channel.EMAIL: settings.notify_rate_email,
    }


def build_providers(settings: Settings, redis: Redis, announce: FeedAnnouncer | None = None) -> Providers:
    """Must be called inside a running event loop (the async Twilio client needs one)."""
    twilio = _twilio_client(settings)
    firebase_app = _firebase_app(settings)

    async def session_open(phones: list[str]) -> set[str]:
        marks = await redis.mget([whatsapp_session_key(settings, phone) for phone in phones])
        return {phone for phone, mark in zip(phones, marks, strict=True) if mark is not None}

    callback = settings.public_link(STATUS_CALLBACK_PATH)
    adapters: dict[Channel, ChannelAdapter] = {
        Channel.PUSH: PushAdapter(firebase_app),
        Channel.SMS: TwilioMessagingAdapter(
            twilio, channel=Channel.SMS, sender=settings.twilio_sms_from, status_callback_url=callback
        ),
        Channel.WHATSAPP: TwilioMessagingAdapter(
            twilio,
            channel=Channel.WHATSAPP,
            sender=settings.twilio_whatsapp_from,
            status_callback_url=callback,
            whatsapp_template_sid=settings.whatsapp_template_sid,
            whatsapp_session_open=session_open,
        ),
        Channel.EMAIL: EmailAdapter(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            attachments=settings.export_path,  # scheduled reports' files (app.reports.schedules)
        ),
        Channel.IN_APP: InAppAdapter(announce),
    }
    limits = {
        channel: RateLimiter(redis, channel_key(settings.redis_prefix, channel), per_second)
        for channel, per_second in configured_rates(settings).items()
    }
    return Providers(adapters, limits, firebase_app)


def delivery_id_from_callback(query_value: str | None) -> UUID | None:
    try:
        return UUID(query_value) if query_value else None
    except ValueError:
        return None
