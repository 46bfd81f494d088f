"""Tell the user a job ended: a log line always; email by SMTP (``TOS2CA_SMTP_URL``) or Amazon
SES (``TOS2CA_SES_SENDER``) when configured. A failed notification never fails the job."""

from __future__ import annotations

import logging
import os
import smtplib
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlparse

from tos2ca_batch.config import Config

log = logging.getLogger("tos2ca_batch")


def compose(cfg: Config, job_id: int) -> tuple[str, str]:
    db = cfg.db()
    row = db.get_job(job_id)
    subject = f"TOS2CA job {job_id} {row['status']}"
    if row["status"] == "cancelled":
        body = f"Job {job_id} ({row['dataset']} {row['variable']}) was cancelled.\nReason: {row['message']}\n"
    elif row["status"] == "complete":
        body = (f"Job {job_id} ({row['dataset']} {row['variable']}) is complete.\n"
                f"Outputs: {cfg.outputs(job_id).prefix}/\n"
                + "".join(f"  {o['location']}\n" for o in db.outputs(job_id)))
    else:
        body = f"Job {job_id} ({row['dataset']} {row['variable']}) failed.\nReason: {row['message']}\n"
    return subject, body


def _address(cfg: Config, job_id: int) -> str | None:
    """The job's address, only if it is one valid single address (the row stores what the user
    sent, before validation refused it)."""
    from tos2ca_batch.spec import EMAIL_RE

    email = cfg.db().user_email(cfg.db().get_job(job_id).get("userID"))
    return email if isinstance(email, str) and EMAIL_RE.match(email) and "," not in email else None


def send_smtp(url: str, sender: str, to: str, subject: str, body: str) -> None:
    u = urlparse(url)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    cls = smtplib.SMTP_SSL if u.scheme == "smtps" else smtplib.SMTP
    with cls(u.hostname, u.port or (465 if u.scheme == "smtps" else 25), timeout=30) as s:
        if parse_qs(u.query).get("starttls") == ["1"]:
            s.starttls()
        if u.username:
            s.login(unquote(u.username), unquote(u.password or ""))
        s.send_message(msg)


def send_ses(sender: str, to: str, subject: str, body: str) -> str:
    import boto3

    ses = boto3.client("ses", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    res = ses.send_email(Source=sender, Destination={"ToAddresses": [to]},
                         Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}})
    return res["MessageId"]


def notify(cfg: Config, job_id: int) -> None:
    subject, body = compose(cfg, job_id)
    to = _address(cfg, job_id)
    log.info("%s (notify %s)", subject, to or "no address")
    if not to:
        return
    smtp, ses = os.environ.get("TOS2CA_SMTP_URL"), os.environ.get("TOS2CA_SES_SENDER")
    sender = os.environ.get("TOS2CA_MAIL_FROM") or ses or "tos2ca-batch@localhost"
    try:
        if smtp:
            send_smtp(smtp, sender, to, subject, body)
        elif ses:
            send_ses(ses, to, subject, body)
    except Exception as exc:  # the job's result stands; say why the mail did not go
        log.warning("could not email job %s notification: %s", job_id, type(exc).__name__)
