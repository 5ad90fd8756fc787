"""Local fakes of Twilio, FCM, SMTP and Razorpay that the real SDKs talk to (tests and local dev).

Start them in-process with :func:`running_fakes`, or as a process with
``python -m notifications.fakes``; point the SDKs at them with the helpers in
:mod:`notifications.fakes.sdk_wiring`.
"""

from notifications.fakes.app import FakeHub, build_app
from notifications.fakes.fcm_server import FcmBehaviour, FcmFake, FcmMessage
from notifications.fakes.razorpay_server import RazorpayBehaviour, RazorpayFake
from notifications.fakes.runner import RunningFakes, running_fakes
from notifications.fakes.smtp_server import ReceivedEmail, SmtpBehaviour, SmtpFake
from notifications.fakes.twilio_models import (
    DeliveryFailure,
    PlacedCall,
    SentMessage,
    TwilioBehaviour,
    WebhookDelivery,
)
from notifications.fakes.twilio_server import TwilioFake

__all__ = [
    "DeliveryFailure",
    "FakeHub",
    "FcmBehaviour",
    "FcmFake",
    "FcmMessage",
    "PlacedCall",
    "RazorpayBehaviour",
    "RazorpayFake",
    "ReceivedEmail",
    "RunningFakes",
    "SentMessage",
    "SmtpBehaviour",
    "SmtpFake",
    "TwilioBehaviour",
    "TwilioFake",
    "WebhookDelivery",
    "build_app",
    "running_fakes",
]
