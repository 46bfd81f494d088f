"""Tell the user a job ended: a log line always; email by SMTP (``Config.smtp_url``) or Amazon
SES (``Config.ses_sender``) when configured. A failed notification never fails the job."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, unquote, urlparse

from tos2ca_batch.config import Config

log = logging.getLogger("tos2ca_batch")


def compose(cfg: Config, job_id: int, outputs_prefix: str | None = None) -> tuple[str, str]:
    """Subject and body; a complete job's body names ``outputs_prefix`` and its files."""
    db = cfg.db()
    row = db.get_job(job_id)
    subject = f"TOS2CA job {job_id} {row['status']}"
    if row["stage"] == "sync" and row["status"] == "complete":
        job = row["phdefJobID"]
        subject = f"TOS2CA job {job} synced: new anomalies"
        body = (f"Job {job} ({row['dataset']} {row['variable']}) was extended by sync {job_id}.\n"
                f"{row['message']}\nOutputs: {outputs_prefix}/\n")
    elif row["status"] == "cancelled":
        body = f"Job {job_id} ({row['dataset']} {row['variable']}) was cancelled.\nReason: {row['message']}\n"
    elif row["status"] == "complete":
        body = (f"Job {job_id} ({row['dataset']} {row['variable']}) is complete.\n"
                f"Outputs: {outputs_prefix}/\n"
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
    import smtplib  # with email's modules, 11 ms a job that sends no mail would pay at start
    from email.message import EmailMessage

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


def send_ses(sender: str, to: str, subject: str, body: str, endpoint_url: str | None = None,
             region: str | None = None) -> str:
    from tos2ca_batch.stores.awsclient import client

    ses = client("ses", endpoint_url, region)
    res = ses.send_email(Source=sender, Destination={"ToAddresses": [to]},
                         Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}})
    return res["MessageId"]


def notify(cfg: Config, job_id: int, outputs_prefix: str | None = None) -> None:
    subject, body = compose(cfg, job_id, outputs_prefix)
    to = _address(cfg, job_id)
    log.info("%s (notify %s)", subject, to or "no address")
    if not to:
        return
    sender = cfg.mail_from or cfg.ses_sender or "tos2ca-batch@localhost"
    try:
        if cfg.smtp_url:
            send_smtp(cfg.smtp_url, sender, to, subject, body)
        elif cfg.ses_sender:
            send_ses(cfg.ses_sender, to, subject, body, cfg.aws_endpoint_url, cfg.aws_region)
    except Exception as exc:  # the job's result stands; say why the mail did not go
        log.warning("could not email job %s notification: %s", job_id, type(exc).__name__)
