"""``python -m notifications.fakes``: run every fake provider in one process for local dev.

Prints ``KEY=value`` lines (TWILIO_BASE_URL, FCM_BASE_URL, SMTP_PORT, ...) that can be pasted
into an env file, then serves until SIGINT/SIGTERM.
"""

import argparse
import asyncio
import os
import signal

from notifications.fakes.fcm_server import DEFAULT_ACCESS_TOKEN, DEFAULT_PROJECT_ID
from notifications.fakes.razorpay_server import DEFAULT_KEY_ID, DEFAULT_KEY_SECRET, DEFAULT_WEBHOOK_SECRET
from notifications.fakes.runner import running_fakes
from notifications.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m notifications.fakes", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="HTTP port for Twilio+FCM fakes (0 = any)")
    parser.add_argument("--smtp-port", type=int, default=1025, help="SMTP port (0 = any)")
    # Default to the same credentials the app is configured with, so signatures line up.
    parser.add_argument("--twilio-account-sid", default=env("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID))
    parser.add_argument("--twilio-auth-token", default=env("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN))
    parser.add_argument("--fcm-project-id", default=env("FCM_PROJECT_ID", DEFAULT_PROJECT_ID))
    parser.add_argument("--fcm-access-token", default=env("FCM_ACCESS_TOKEN", DEFAULT_ACCESS_TOKEN))
    parser.add_argument("--razorpay-key-id", default=env("RAZORPAY_KEY_ID", DEFAULT_KEY_ID))
    parser.add_argument("--razorpay-key-secret", default=env("RAZORPAY_KEY_SECRET", DEFAULT_KEY_SECRET))
    parser.add_argument("--razorpay-webhook-secret", default=env("RAZORPAY_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET))
    parser.add_argument("--razorpay-webhook-url", default=None, help="where the fake Razorpay sends its webhooks")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_fakes(
        host=args.host,
        http_port=args.port,
        smtp_port=args.smtp_port,
        twilio_account_sid=args.twilio_account_sid,
        twilio_auth_token=args.twilio_auth_token,
        fcm_project_id=args.fcm_project_id,
        fcm_access_token=args.fcm_access_token,
        razorpay_key_id=args.razorpay_key_id,
        razorpay_key_secret=args.razorpay_key_secret,
        razorpay_webhook_secret=args.razorpay_webhook_secret,
        razorpay_webhook_url=args.razorpay_webhook_url,
    ) as fakes:
        for key, value in fakes.env().items():
            print(f"{key}={value}")
        print(f"# dashboard: {fakes.dashboard_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
